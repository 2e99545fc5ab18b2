"""`headroom agent`: the process inside every agent pod.

It prepares Claude Code's environment, runs `claude -p --output-format stream-json --verbose`,
reads the event stream live and leaves one termination message saying what happened.
Detection lives in `stream` (pure); process plumbing in `process`.
"""
