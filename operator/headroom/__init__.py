"""Headroom: keeps a fleet of Claude Code sessions working across several Anthropic accounts."""

GROUP = "headroom.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
