"""The pod contract: every name the operator's pod builder and the runner inside the pod
share. Both sides import these constants; neither spells them again."""

from __future__ import annotations

from typing import Final

# -- environment of the agent container (and of the `clone` init container) --------------
SESSION_ID: Final = "HEADROOM_SESSION_ID"
PROMPT: Final = "HEADROOM_PROMPT"
RESUME_PROMPT: Final = "HEADROOM_RESUME_PROMPT"
ATTEMPT: Final = "HEADROOM_ATTEMPT"
EXPECT_TRANSCRIPT: Final = "HEADROOM_EXPECT_TRANSCRIPT"
WORKDIR: Final = "HEADROOM_WORKDIR"
MODEL: Final = "HEADROOM_MODEL"
MAX_TURNS: Final = "HEADROOM_MAX_TURNS"
PERMISSION_MODE: Final = "HEADROOM_PERMISSION_MODE"
CREDENTIALS_FILE: Final = "HEADROOM_CREDENTIALS_FILE"
TERMINATION_LOG: Final = "HEADROOM_TERMINATION_LOG"
STOP_GRACE_SECONDS: Final = "HEADROOM_STOP_GRACE_SECONDS"
CLAUDE_BIN: Final = "HEADROOM_CLAUDE_BIN"
# JSON: the Claude Code options of spec.claude, resolved for this attempt (budget left, ...).
CLAUDE_OPTIONS: Final = "HEADROOM_CLAUDE"
# The MCP configuration file (spec.claude.mcpServers as mounted); its own variable, not a
# field of CLAUDE_OPTIONS, because a path is where the volume is mounted.
MCP_CONFIG: Final = "HEADROOM_MCP_CONFIG"
# JSON list: the repositories to clone (init container) and whose credentials to scrub.
# Paths in it are relative: a repository's to the workspace, a credential file's to
# GIT_CREDENTIALS_ENV, so that they hold wherever the volumes are mounted.
REPOS: Final = "HEADROOM_REPOS"
GIT_CREDENTIALS_ENV: Final = "HEADROOM_GIT_CREDENTIALS"
# Seconds one git command of the clone init container may take (default 600).
CLONE_TIMEOUT_SECONDS: Final = "HEADROOM_CLONE_TIMEOUT_SECONDS"
# Comma-separated names of variables whose values come from Secrets: scrubbed from output.
SCRUB_ENV: Final = "HEADROOM_SCRUB_ENV"
# A directory of mounted Secrets (envFrom secretRef) whose values are scrubbed likewise.
SCRUB_DIR: Final = "HEADROOM_SCRUB_DIR"

# The account's token or API key, staged by the `credential` init container in a file on a
# memory-backed volume, and its credential type (OAuthToken or APIKey). The runner reads the
# file, unlinks it and hands the value to Claude Code on a pipe, so no environment variable
# of the pod, and no Secret volume of the agent container, ever holds it.
STAGED_CREDENTIAL: Final = "HEADROOM_STAGED_CREDENTIAL"
STAGED_CREDENTIAL_TYPE: Final = "HEADROOM_STAGED_CREDENTIAL_TYPE"
# Where the init container reads the runtime Secret's key from.
CREDENTIAL_SOURCE: Final = "HEADROOM_CREDENTIAL_SOURCE"
# Claude Code reads the credential from this inherited file descriptor (a pipe) instead of a
# variable: verified with the pinned CLI for both (tests/runner/test_agent_cli.py).
OAUTH_TOKEN_FD_ENV: Final = "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR"
API_KEY_FD_ENV: Final = "CLAUDE_CODE_API_KEY_FILE_DESCRIPTOR"

CONFIG_DIR_ENV: Final = "CLAUDE_CONFIG_DIR"
HOME_ENV: Final = "HOME"
# Set to "1" in every pod: no telemetry, update checks or other calls besides the API's.
NO_NONESSENTIAL_TRAFFIC_ENV: Final = "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"
OAUTH_TOKEN_ENV: Final = "CLAUDE_CODE_OAUTH_TOKEN"
API_KEY_ENV: Final = "ANTHROPIC_API_KEY"
AUTH_TOKEN_ENV: Final = "ANTHROPIC_AUTH_TOKEN"
BASE_URL_ENV: Final = "ANTHROPIC_BASE_URL"
# Set in every pod even without --anthropic-base-url: a variable of the same name from a
# user's envFrom source would otherwise send the account's credential to another server.
DEFAULT_API_URL: Final = "https://api.anthropic.com"
CREDENTIAL_ENV: Final = (API_KEY_ENV, OAUTH_TOKEN_ENV, AUTH_TOKEN_ENV)

# What users may not set through spec.env (the CRD refuses them with the same list; a test
# keeps the two equal). Everything starting with HEADROOM_ is reserved as well.
RESERVED_ENV_PREFIX: Final = "HEADROOM_"
RESERVED_ENV: Final = frozenset(
    {
        CONFIG_DIR_ENV,
        OAUTH_TOKEN_ENV,
        OAUTH_TOKEN_FD_ENV,
        API_KEY_FD_ENV,
        API_KEY_ENV,
        AUTH_TOKEN_ENV,
        BASE_URL_ENV,
        HOME_ENV,
        NO_NONESSENTIAL_TRAFFIC_ENV,
    }
)

# -- paths inside the pod --------------------------------------------------------------------
WORKSPACE: Final = "/workspace"
HOME: Final = "/home/agent"
CONFIG_DIR: Final = "/var/lib/headroom/claude"  # CLAUDE_CONFIG_DIR: an emptyDir, per pod
PROJECTS_SUBPATH: Final = ".claude-projects"  # transcripts on the PVC, at CONFIG_DIR/projects
STATE_SUBDIR: Final = ".headroom"  # the runner's own files on the workspace
CREDENTIALS_DIR: Final = "/var/run/headroom/credentials"
# The runtime Secret's key, mounted in the `credential` init container only.
CREDENTIAL_SOURCE_DIR: Final = "/var/run/headroom/credential-source"
# The memory-backed volume the init container stages the credential on.
STAGED_CREDENTIAL_DIR: Final = "/var/run/headroom/credential"
STAGED_CREDENTIAL_NAME: Final = "value"
GIT_CREDENTIALS_DIR: Final = "/var/run/headroom/git"  # repo i's Secret at <dir>/<i>/
MCP_DIR: Final = "/var/run/headroom/mcp"
MCP_FILE: Final = "mcp.json"
SCRUB_MOUNT_DIR: Final = "/var/run/headroom/scrub"  # envFrom Secret i at <dir>/<i>/
TERMINATION_MESSAGE_PATH: Final = "/dev/termination-log"

# -- containers, volumes, labels, annotations -----------------------------------------------
AGENT_CONTAINER: Final = "agent"
CLONE_CONTAINER: Final = "clone"
CREDENTIAL_CONTAINER: Final = "credential"
OPERATOR_VOLUMES: Final = frozenset({"workspace", "claude-config", "home", "tmp", "credentials"})
OPERATOR_VOLUME_PREFIX: Final = "headroom-"

LABEL_MANAGED: Final = "app.kubernetes.io/managed-by"
LABEL_SESSION_UID: Final = "headroom.dev/session-uid"
LABEL_ACCOUNT: Final = "headroom.dev/account"
LABEL_CLUSTER_ACCOUNT: Final = "headroom.dev/cluster-account"  # a ClusterClaudeAccount's name
LABEL_ATTEMPT: Final = "headroom.dev/attempt"
ANN_ACCOUNT: Final = "headroom.dev/account"
ANN_SESSION: Final = "headroom.dev/session"
ANN_AUTH_PATH: Final = "headroom.dev/auth-path"
MANAGER: Final = "headroom"

# Exit code of the clone init container when a repository cannot be cloned.
CLONE_FAILED_PREFIX: Final = "RepoCloneFailed: "
