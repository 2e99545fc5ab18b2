"""`headroom-dev provisioner`: DEV/TEST ONLY. A PVC provisioner for the local cluster, which
has no storage driver: hostPath volumes under one local directory (see provisioner.py)."""
