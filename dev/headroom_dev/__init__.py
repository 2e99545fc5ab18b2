"""Development stand-ins for Headroom, shipped apart from the operator and the runner.

- `sandbox`: a local stand-in for the Anthropic Messages API (fake tokens, usage windows);
- `executor`: a dev/test stand-in for a kubelet that runs one node's pods as local processes;
- `sim`: the discrete-event quota simulator that compares placement policies.

None of these belongs in a production image: the `headroom` distribution (operator/) does not
contain them, and its CLI does not offer them. `make venv` installs both distributions.
"""
