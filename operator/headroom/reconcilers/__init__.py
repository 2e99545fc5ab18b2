"""Reconcilers: turn the core's decisions into Kubernetes writes. kopf handlers in
`headroom.controllers` only route events here."""
