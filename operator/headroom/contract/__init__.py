"""What the operator, the agent pod and the CRDs must agree on, each written once: the pod's
names (`pod`), the termination message (`termination`, with its JSON Schema beside it), secret
scrubbing (`scrub`) and the CRDs' defaults and caps (`crd`).

Every side imports these modules instead of spelling the values again: the pod builder and the
runner the names, the runner the message it writes and the operator the message it reads.
"""
