"""The task part of an AgentSession's spec, read into typed values: the repositories to clone
and the Claude Code options. Pure; every problem names the spec field it comes from."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from headroom.core.durations import parse_duration
from headroom.core.reasons import FinishReason

JSON = dict[str, Any]
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:(?P<path>\S+)$")


class SpecError(ValueError):
    """The spec cannot be carried out; the message starts with the field's path."""


@dataclass(frozen=True)
class RepoCredentials:
    secret: str
    key: str
    known_hosts_key: str | None
    ssh: bool


@dataclass(frozen=True)
class Repo:
    url: str
    path: str  # relative to the workspace
    ref: str | None = None
    depth: int | None = None
    branch: str | None = None
    credentials: RepoCredentials | None = None


def uses_ssh(url: str) -> bool:
    return url.startswith("ssh://") or _SCP_LIKE.match(url) is not None


def default_path(url: str) -> str:
    """The repository's name, as `git clone` names its directory."""
    match = _SCP_LIKE.match(url)
    path = match.group("path") if match else url.split("://", 1)[-1].split("/", 1)[-1]
    name = path.rstrip("/").rsplit("/", 1)[-1]
    name = name[:-4] if name.endswith(".git") else name
    return name if name and name not in {".", ".."} else "repo"


def repos_of(spec: JSON) -> list[Repo]:
    repos = [_repo(item, i) for i, item in enumerate(spec.get("repos") or [])]
    seen: dict[str, int] = {}
    for i, repo in enumerate(repos):
        if repo.path in seen:
            raise SpecError(
                f"spec.repos[{i}].path: {repo.path!r} is also the directory of "
                f"spec.repos[{seen[repo.path]}] (a path defaults to the repository's name)"
            )
        seen[repo.path] = i
    return repos


def _repo(item: JSON, index: int) -> Repo:
    url = str(item["url"])
    ref = item.get("credentialsSecretRef")
    credentials = None
    if ref:
        if url.startswith("git://"):
            raise SpecError(
                f"spec.repos[{index}].credentialsSecretRef: the git:// protocol has no "
                "authentication; use an https or ssh URL"
            )
        ssh = uses_ssh(url)
        if ref.get("knownHostsKey") and not ssh:
            raise SpecError(
                f"spec.repos[{index}].credentialsSecretRef.knownHostsKey: only ssh URLs "
                "check host keys"
            )
        credentials = RepoCredentials(
            secret=ref["name"],
            key=ref.get("key") or ("ssh-privatekey" if ssh else "token"),
            known_hosts_key=ref.get("knownHostsKey"),
            ssh=ssh,
        )
    return Repo(
        url=url,
        path=item.get("path") or default_path(url),
        ref=item.get("ref"),
        depth=item.get("depth"),
        branch=item.get("branch"),
        credentials=credentials,
    )


@dataclass(frozen=True)
class Limits:
    """spec.timeout, spec.waitTimeout, spec.ttlSecondsAfterFinished, spec.claude.maxBudgetUSD."""

    timeout: timedelta | None = None
    wait_timeout: timedelta | None = None
    ttl: timedelta | None = None
    budget_usd: float | None = None


def limits_of(spec: JSON) -> Limits:
    def duration(field: str) -> timedelta | None:
        raw = spec.get(field)
        if raw is None:
            return None
        try:
            return parse_duration(str(raw))
        except (ValueError, OverflowError) as exc:
            raise SpecError(f"spec.{field}: {exc}") from None

    ttl = spec.get("ttlSecondsAfterFinished")
    budget = (spec.get("claude") or {}).get("maxBudgetUSD")
    return Limits(
        timeout=duration("timeout"),
        wait_timeout=duration("waitTimeout"),
        ttl=timedelta(seconds=int(ttl)) if ttl is not None else None,
        budget_usd=float(budget) if budget is not None else None,
    )


@dataclass(frozen=True)
class Totals:
    """Usage over all attempts so far (status.totals)."""

    turns: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0

    def plus(self, turns: int | None, cost_usd: float | None, seconds: float) -> Totals:
        return Totals(
            turns=self.turns + (turns or 0),
            cost_usd=round(self.cost_usd + (cost_usd or 0.0), 6),
            seconds=round(self.seconds + max(0.0, seconds), 3),
        )


@dataclass(frozen=True)
class Stop:
    reason: str
    message: str


def over_limits(limits: Limits, totals: Totals, running_seconds: float = 0.0) -> Stop | None:
    """Whether the session must end now because of a limit the user set."""
    used = totals.seconds + running_seconds
    if limits.timeout is not None and used >= limits.timeout.total_seconds():
        return Stop(
            FinishReason.TIMED_OUT,
            f"the session ran {used:.0f}s over its attempts, reaching spec.timeout "
            f"({limits.timeout.total_seconds():.0f}s)",
        )
    if limits.budget_usd is not None and totals.cost_usd >= limits.budget_usd:
        return Stop(
            FinishReason.BUDGET_EXHAUSTED,
            f"the session spent ${totals.cost_usd:.4f} of its ${limits.budget_usd:.4f} budget "
            "(spec.claude.maxBudgetUSD)",
        )
    return None


def seconds_left(limits: Limits, totals: Totals) -> float | None:
    if limits.timeout is None:
        return None
    return max(0.0, limits.timeout.total_seconds() - totals.seconds)


def waited_too_long(limits: Limits, since: datetime, now: datetime) -> Stop | None:
    if limits.wait_timeout is None or now - since < limits.wait_timeout:
        return None
    return Stop(
        FinishReason.NO_HEADROOM_TIMEOUT,
        f"no account had headroom for {(now - since).total_seconds():.0f}s "
        f"(spec.waitTimeout {limits.wait_timeout.total_seconds():.0f}s)",
    )


def budget_left(limits: Limits, spent_usd: float) -> float | None:
    """What an attempt may still spend of spec.claude.maxBudgetUSD (None: unlimited)."""
    if limits.budget_usd is None:
        return None
    return max(0.0, limits.budget_usd - spent_usd)
