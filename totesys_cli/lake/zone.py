"""Each zone's identity: what it is (raw or processed) and which one it is.

A zone gets its identity the first time a run writes to it, created exclusively, so
two runs can never give it two. Processed manifests record the raw zone they read,
and the warehouse records the processed zone it loaded (see `pipeline.lineage`): a step
pointed at another zone than the one its state came from is refused instead of
quietly starting again from nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

from totesys_cli.errors import RuntimeFailure
from totesys_cli.lake.store import Lake

IDENTITY_KEY = "_zone.json"
KINDS = ("raw", "processed")


@dataclass(frozen=True)
class Identity:
    kind: str
    id: str
    created: str

    def describe(self, url: str) -> str:
        return f"{url} (zone {self.id})"


def identity(zone: Lake) -> Identity | None:
    """The zone's identity; None for a zone no run has written (or an older one)."""
    if not zone.list(IDENTITY_KEY):
        return None
    where = f"{zone.url}/{IDENTITY_KEY}"
    try:
        data = json.loads(zone.get(IDENTITY_KEY))
        found = Identity(str(data["kind"]), str(data["id"]), str(data["created"]))
    except (ValueError, KeyError, TypeError) as err:
        raise RuntimeFailure(
            f"{where} is not a zone identity ({type(err).__name__})",
            "The lake was changed by hand: restore the file from a backup or versioning",
        ) from None
    if found.kind not in KINDS:
        raise RuntimeFailure(f"{where} names an unknown kind {found.kind!r}")
    return found


def claim(zone: Lake, kind: str) -> Identity:
    """The zone's identity, created now if it has none (whoever creates it first wins)."""
    current = identity(zone)
    if current is not None:
        return current
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    new = {"kind": kind, "id": uuid.uuid4().hex, "created": created}
    zone.put_new(IDENTITY_KEY, json.dumps(new).encode())
    found = identity(zone)
    if found is None:
        raise RuntimeFailure(f"{zone.url}/{IDENTITY_KEY} vanished as it was created")
    return found


def overlap(a: Lake, b: Lake) -> bool:
    """The same place, or one inside the other."""
    first, second = a.url.rstrip("/"), b.url.rstrip("/")
    return first == second or first.startswith(second + "/") or second.startswith(first + "/")
