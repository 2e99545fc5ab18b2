"""`headroom-dev executor`: a dev/test stand-in for a kubelet.

The local control plane has no kubelet (no root-free container runtime here), so this
package registers one Node and runs each pod bound to it as local processes (its init
containers one after another, then its single container), with the pod's env, Secrets and
volumes mapped to local directories, and reports the pod status the way a kubelet does. It
also provisions hostPath PersistentVolumes for PVCs.
Never meant for a real cluster: see docs/executor.md.
"""
