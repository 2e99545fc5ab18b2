"""Development stand-ins for Headroom, shipped apart from the operator and the runner.

- `sandbox`: a local stand-in for the Anthropic Messages API (fake tokens, usage windows);
- `provisioner`: a PVC provisioner for the local cluster (hostPath volumes; it has no CSI driver);
- `sim`: the discrete-event quota simulator that compares placement policies.

None of these belongs in a production image: the `headroom-operator` distribution (operator/)
does not contain them, and its CLI does not offer them. `make venv` installs both
distributions.
"""
