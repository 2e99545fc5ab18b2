"""`headroom-dev sandbox-api`: a local stand-in for the Anthropic Messages API.

It answers the real Claude Code CLI the way Anthropic does (streamed messages, usage windows
with `anthropic-ratelimit-unified-*` headers, 401/429/500/529 errors), so the runner's
detection is tested against real signals without touching the network. Tests, demos and
drills steer it through the `/_admin/...` endpoints.
"""
