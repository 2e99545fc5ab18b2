"""The driver's reading of the recorder's JSON lines: when each pod and session did what."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JSON = dict[str, Any]


class RecorderFailed(RuntimeError):
    pass


@dataclass
class Timeline:
    path: Path
    offset: int = 0
    ready: bool = False
    pods: dict[str, JSON] = field(default_factory=dict)  # latest fields per pod
    sessions: dict[str, JSON] = field(default_factory=dict)  # latest fields per session
    pod_added: dict[str, float] = field(default_factory=dict)
    pod_running: dict[str, float] = field(default_factory=dict)  # first seen phase Running
    pod_terminated: dict[str, float] = field(default_factory=dict)  # first seen terminated
    pod_deleted: dict[str, float] = field(default_factory=dict)
    # first time a session was seen Running with a given attempt
    session_running: dict[tuple[str, int], float] = field(default_factory=dict)

    def update(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # only whole lines; the rest is still being written
        self.offset += end
        for line in data[:end].splitlines():
            if line.strip():
                self._apply(json.loads(line))

    def _apply(self, rec: JSON) -> None:
        kind, t = rec["k"], rec["t"]
        if kind == "ready":
            self.ready = True
        elif kind == "error":
            raise RecorderFailed(f"the watch recorder failed: {rec.get('detail')}")
        elif kind == "pod":
            name = rec["n"]
            if rec["e"] == "DELETED":
                self.pod_deleted.setdefault(name, t)
                self.pods.pop(name, None)
                return
            self.pods[name] = rec
            self.pod_added.setdefault(name, t)
            if rec["ph"] == "Running" and not rec["term"]:
                self.pod_running.setdefault(name, t)
            if rec["term"] or rec["ph"] in ("Succeeded", "Failed"):
                self.pod_terminated.setdefault(name, t)
        elif kind == "session":
            name = rec["n"]
            if rec["e"] == "DELETED":
                self.sessions.pop(name, None)
                return
            self.sessions[name] = rec
            if rec["ph"] == "Running":
                self.session_running.setdefault((name, rec["at"]), t)

    # --- questions the driver asks ---------------------------------------------------------

    def running_sessions(self, attempt: int | None = None) -> set[str]:
        return {
            n
            for n, s in self.sessions.items()
            if s["ph"] == "Running" and (attempt is None or s["at"] == attempt)
        }

    def running_pods(self) -> set[str]:
        return {
            n
            for n, p in self.pods.items()
            if p["ph"] == "Running" and not p["term"] and not p["del"]
        }

    def live_pods_by_account(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.pods.values():
            if not p["term"] and p["ph"] not in ("Succeeded", "Failed"):
                counts[p["a"]] = counts.get(p["a"], 0) + 1
        return counts

    def live_pods_by_session(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.pods.values():
            if not p["term"] and p["ph"] not in ("Succeeded", "Failed"):
                counts[p["s"]] = counts.get(p["s"], 0) + 1
        return counts
