"""Mapping of container paths (volume mounts, termination-message path) to host paths.

Used by the process kubelet (:mod:`devcluster.kubelet`): containers are plain
local processes without their own mount namespace, so every occurrence of a
``volumeMounts[].mountPath`` (or the ``terminationMessagePath``) at the start of
a path inside ``command``, ``args``, env values and ``workingDir`` is rewritten to
the directory that backs it on the host.  Pure functions; unit-tested.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath

__all__ = ["PathMap", "normalise_mount_path"]

# Characters that may continue a path component: a mount path only matches when it
# is not glued to such a character on either side ("/data" must not match
# "/database", "/data.csv" or "x/data").
_PATH_CHARS = r"A-Za-z0-9_.\-"


def normalise_mount_path(path: str) -> str:
    """Normalise a container path: collapse ``//`` and ``.``, drop a trailing ``/``."""
    norm = str(PurePosixPath(path))
    return norm if norm.startswith("/") else "/" + norm


class PathMap:
    """An ordered set of ``container path -> host path`` substitutions.

    The longest container path wins ("/data/sub/x" goes to the ``/data/sub`` mount,
    not to ``/data``), and the substitution happens in a single pass, so a host
    path that happens to contain another mount path is never rewritten twice.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._pairs: dict[str, str] = {}
        self._regex: re.Pattern[str] | None = None
        for container_path, host_path in pairs:
            self.add(container_path, host_path)

    def add(self, container_path: str, host_path: str) -> None:
        norm = normalise_mount_path(container_path)
        if norm == "/":
            raise ValueError("a volume mounted at / cannot be mapped onto the host")
        self._pairs[norm] = str(host_path)
        self._regex = None

    def items(self) -> list[tuple[str, str]]:
        return sorted(self._pairs.items(), key=lambda kv: len(kv[0]), reverse=True)

    def __len__(self) -> int:
        return len(self._pairs)

    @property
    def regex(self) -> re.Pattern[str] | None:
        if self._regex is None and self._pairs:
            alternatives = "|".join(re.escape(p) for p, _ in self.items())
            self._regex = re.compile(rf"(?<![{_PATH_CHARS}/])(?:{alternatives})(?![{_PATH_CHARS}])")
        return self._regex

    def apply(self, value: str) -> str:
        """Rewrite every mapped container path occurring in ``value``."""
        regex = self.regex
        if regex is None or not value:
            return value
        return regex.sub(lambda m: self._pairs[m.group(0)], value)

    def apply_all(self, values: Iterable[str]) -> list[str]:
        return [self.apply(v) for v in values]
