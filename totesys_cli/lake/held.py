"""What a zone holds, counted as runs commit, so that nothing need list it to size it.

A manifest counts the runs before it (their files and manifests) and its own data
files; its own size is known once written, and added by the next run and by
`held_with`. A zone written by a release that did not count is listed once, by the
first run that counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from totesys_cli.lake.store import Lake


@dataclass(frozen=True)
class Held:
    """Objects and their bytes."""

    files: int
    bytes: int

    def __add__(self, other: Held) -> Held:
        return Held(self.files + other.files, self.bytes + other.bytes)

    def to_json(self) -> dict[str, int]:
        return {"files": self.files, "bytes": self.bytes}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Held | None:
        return cls(int(data["files"]), int(data["bytes"])) if data else None


def held_with(manifest: Any) -> Held | None:
    """What the zone held once this run committed, its manifest included (None: a
    manifest of a release that did not count)."""
    held = manifest.held
    return None if held is None else Held(held.files + 1, held.bytes + manifest.size)


def listed(zone: Lake, leaving_out: set[str]) -> Held:
    """Every object of the zone but these, listed: once, after a release that did not
    count."""
    found = [item for item in zone.list("") if item.key not in leaving_out]
    return Held(len(found), sum(item.size for item in found))


def added(before: Held, files: list) -> Held:
    """`before` and these data files."""
    return Held(before.files + len(files), before.bytes + sum(f.bytes for f in files))
