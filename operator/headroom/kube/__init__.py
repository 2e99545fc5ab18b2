"""All of Headroom's Kubernetes I/O goes through `client.Kube`; the manifests it sends are
built by the pure functions in `manifests`."""
