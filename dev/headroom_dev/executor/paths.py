"""Container paths mapped to local paths.

A local process cannot see a container's filesystem, so every volume mount becomes a local
directory and every container path under a mountPath is translated to the matching local
path. Pure functions only.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Mount:
    container_path: str  # normalised absolute mountPath
    local_path: Path  # the volume's local directory (or its subPath) or a single file
    volume: str


@dataclass(frozen=True)
class Bind:
    """A mount nested inside another mount: `target` (inside the outer mount's local
    directory) must show the contents of `source`, as a bind mount would."""

    source: Path
    target: Path


def normalise(path: str) -> str:
    return posixpath.normpath(path) if path.startswith("/") else path


def is_under(path: str, parent: str) -> bool:
    return path == parent or parent == "/" or path.startswith(parent.rstrip("/") + "/")


class PathMap:
    def __init__(self, mounts: list[Mount], rootfs: Path | None = None) -> None:
        # Longest mountPath first, so a nested mount wins over the mount it sits in.
        self.mounts = sorted(mounts, key=lambda m: len(m.container_path), reverse=True)
        # Where directories that only hold mount points live (see `local`).
        self.rootfs = rootfs
        self.ancestors: set[str] = set()  # such directories handed out so far

    def local(self, container_path: str, ancestors: bool = True) -> Path | None:
        """The local path of a container path, or None when no mount covers it.

        A directory no mount covers but that holds mount points (/var/run/headroom/git, the
        parent of the mounts 0/, 1/) exists in a container's root filesystem; here it
        becomes a directory under `rootfs` where those mounts are bound (`ancestor_binds`),
        so `$DIR/0/secret` works as it does in the container."""
        path = normalise(container_path)
        if not path.startswith("/"):
            return None
        for mount in self.mounts:
            if is_under(path, mount.container_path):
                rest = posixpath.relpath(path, mount.container_path)
                return mount.local_path if rest == "." else mount.local_path / rest
        if ancestors and self.rootfs is not None and self._holds_mounts(path):
            self.ancestors.add(path)
            return self.rootfs / path.lstrip("/")
        return None

    def _holds_mounts(self, path: str) -> bool:
        return path != "/" and any(is_under(m.container_path, path) for m in self.mounts)

    def ancestor_binds(self) -> list[Bind]:
        """The mounts below the directories `local` placed under rootfs, each at its place
        there (only the outermost: a nested mount travels with the mount it sits in)."""
        if self.rootfs is None:
            return []
        return [
            Bind(source=m.local_path, target=self.rootfs / m.container_path.lstrip("/"))
            for m in self.mounts
            if any(is_under(m.container_path, a) for a in self.ancestors)
            and not any(n is not m and is_under(m.container_path, n.container_path)
                        for n in self.mounts)
        ]  # fmt: skip

    def translate(self, value: str) -> str:
        """An env value that is a container path under a mount becomes the local path; a
        JSON object or array has each such string inside it translated the same way (the
        operator hands over structured settings, e.g. repositories to clone into
        /workspace); anything else (URLs, words, relative paths, lists of paths) is left as
        it is."""
        if value[:1] in ("{", "["):
            return self._translate_json(value)
        if not value.startswith("/") or ":" in value:
            return value
        local = self.local(value)
        return str(local) if local is not None else value

    def _translate_json(self, value: str) -> str:
        try:
            data = json.loads(value)
        except ValueError:
            return value
        translated = self._walk(data)
        # Untouched values keep their exact text: only a changed document is re-serialised.
        return value if translated == data else json.dumps(translated)

    def _walk(self, data: Any) -> Any:
        if isinstance(data, str):
            return self.translate(data) if data.startswith("/") else data
        if isinstance(data, list):
            return [self._walk(v) for v in data]
        if isinstance(data, dict):
            return {k: self._walk(v) for k, v in data.items()}
        return data

    def nested_binds(self) -> list[Bind]:
        """Mounts that sit inside another mount whose local directory is elsewhere: the
        process needs `target` to show `source` (e.g. a PVC subPath mounted at
        <config emptyDir>/projects)."""
        binds = []
        for inner in self.mounts:
            outer = next(
                (
                    m
                    for m in self.mounts
                    if m is not inner
                    and len(m.container_path) < len(inner.container_path)
                    and is_under(inner.container_path, m.container_path)
                ),
                None,
            )
            if outer is None:
                continue
            rest = posixpath.relpath(inner.container_path, outer.container_path)
            target = outer.local_path / rest
            if target != inner.local_path:
                binds.append(Bind(source=inner.local_path, target=target))
        # Deepest first: a recursive bind of an outer mount then carries the inner ones.
        return binds
