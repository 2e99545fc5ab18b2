"""`kubectl headroom`: the pool at a glance and the few actions a person on call takes.

Installed as the `kubectl-headroom` console script, which kubectl finds on PATH. It reads
ClaudeAccounts, AgentSessions, their Pods and Events, and writes only what the docs tell
users to write themselves: the drill annotations and `spec.paused` of a ClaudeAccount. It
never reads Secrets."""
