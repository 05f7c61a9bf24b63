"""Manifests: the typed contract between the steps, and the commit of every run.

A zone's runs are numbered; run N is committed when `_manifests/N.json` exists, which
is created only if absent, after all the run's data files (see `store.put_new`), so
two racing runs can never both commit one number. A manifest names its files per
table and carries what the next step needs: raw manifests the extract's snapshot and
watermarks, processed manifests the raw runs they consumed and the transform's state.
Every reader goes through the dataclasses here, which check the kind, the shape and
the format version: a manifest that is not what it should be fails in one line naming
its file. Each kind has its own format, which grows when what its files hold changes;
a reader takes every format of its kind up to its own.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from totesys_cli.errors import RuntimeFailure
from totesys_cli.lake.files import TableFiles
from totesys_cli.lake.held import Held, added, held_with, listed
from totesys_cli.lake.state import Census, TableState, lower_bound, stamp, when
from totesys_cli.lake.store import Lake
from totesys_cli.schemas import SOURCE_TABLES

log = logging.getLogger(__name__)

MANIFESTS = "_manifests"
LATEST_HINT = f"{MANIFESTS}/_latest"


@dataclass
class Manifest:
    """What every manifest has: its number, its run and its tables' files."""

    KIND: ClassVar[str] = ""
    # the newest format of the kind, which this release writes (each kind sets its own)
    FORMAT: ClassVar[int] = 1
    seq: int
    run_id: str
    tables: dict[str, TableFiles]
    quarantine: TableFiles = field(default_factory=TableFiles)  # the versions set aside
    held: Held | None = None  # see `held` (None: written by a release that did not count)
    size: int = field(default=0, compare=False)  # the manifest's own bytes, once written

    def files(self, table: str) -> list[str]:
        entry = self.tables.get(table)
        return entry.keys if entry else []

    def entries(self) -> list[TableFiles]:
        """Every group of data files the run committed."""
        return [*self.tables.values(), self.quarantine]

    def keys(self) -> list[str]:
        """Every data file the run committed."""
        return [k for t in self.entries() for k in t.keys]

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_json(cls, data: dict[str, Any]):
        raise NotImplementedError


@dataclass
class RawManifest(Manifest):
    """An extract: what it read of each table, from which snapshot."""

    KIND: ClassVar[str] = "raw"
    # 2: keys found deleted in the source travel as tombstones (`deleted`), with the
    # census of keys they were found against
    FORMAT: ClassVar[int] = 2
    snapshot_time: dt.datetime = dt.datetime.min
    extracted_at: dt.datetime = dt.datetime.min
    since: dt.datetime | None = None
    overlap: dt.timedelta = dt.timedelta(0)
    state: dict[str, TableState] = field(default_factory=dict)
    deleted: TableFiles = field(default_factory=TableFiles)  # tombstones: keys found gone
    census: Census | None = None  # the newest comparison of keys (None: none yet)

    def entries(self) -> list[TableFiles]:
        return [*super().entries(), self.deleted]

    def passing(self) -> list[str]:
        """The tables a pass over their keys goes on in."""
        return [name for name, state in self.state.items() if state.passing]

    def unfinished(self) -> list[str]:
        """The tables whose reading is not done: a pass goes on, or no extract has read
        them yet."""
        return self.passing() + [name for name in SOURCE_TABLES if name not in self.state]

    def next_lower_bound(self, table: str) -> dt.datetime | None:
        """The lower bound the next extract of `table` uses (with this run's overlap)."""
        return lower_bound(self.state.get(table), self.overlap)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.KIND,
            "run_id": self.run_id,
            "snapshot_time": stamp(self.snapshot_time),
            "extracted_at": stamp(self.extracted_at),
            "since": stamp(self.since),
            "overlap_seconds": self.overlap.total_seconds(),
            "tables": {name: t.to_json(bounded=True) for name, t in self.tables.items()},
            "quarantine": self.quarantine.to_json(bounded=False),
            "deleted": self.deleted.to_json(bounded=False),
            "census": self.census.to_json() if self.census else None,
            "state": {name: s.to_json() for name, s in self.state.items()},
            "held": self.held.to_json() if self.held else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RawManifest:
        return cls(
            seq=int(data["seq"]),
            run_id=str(data["run_id"]),
            tables={n: TableFiles.from_json(t) for n, t in data["tables"].items()},
            quarantine=_quarantine(data),
            snapshot_time=dt.datetime.fromisoformat(data["snapshot_time"]),
            extracted_at=dt.datetime.fromisoformat(data["extracted_at"]),
            since=when(data.get("since")),
            overlap=dt.timedelta(seconds=float(data["overlap_seconds"])),
            deleted=_files(data, "deleted"),
            census=Census.from_json(data.get("census")),
            state={n: TableState.from_json(s) for n, s in data["state"].items()},
            held=Held.from_json(data.get("held")),
        )


@dataclass
class ProcessedManifest(Manifest):
    """A transform: the star rows it wrote, the raw runs it consumed, and the state
    the next transform starts from (encoded by the transform itself)."""

    KIND: ClassVar[str] = "processed"
    # 2: a time of day is an int32 of milliseconds since midnight (1: Parquet TIME),
    # so that Athena and Spark read the files (see `schemas.arrow`); 3: keys deleted in
    # the source travel as tombstones (`deleted`)
    FORMAT: ClassVar[int] = 3
    raw_runs: list[int] = field(default_factory=list)
    raw_seq: int = 0  # every raw run up to this one is consumed
    since: dt.datetime | None = None
    snapshot_time: dt.datetime | None = None
    transformed_at: dt.datetime = dt.datetime.min
    state: dict[str, Any] = field(default_factory=dict)
    waiting: dict[str, TableFiles] = field(default_factory=dict)  # fact rows held back
    raw_zone: str | None = None  # the identity of the raw zone read (older runs: unknown)
    raw_url: str | None = None
    raw_run_id: str | None = None  # the run id of raw run raw_seq (older runs: unknown)
    deleted: TableFiles = field(default_factory=TableFiles)  # tombstones for the star tables

    def entries(self) -> list[TableFiles]:
        return [*super().entries(), *self.waiting.values(), self.deleted]

    @property
    def min_last_updated(self) -> dt.datetime | None:
        return min(filter(None, (t.min_last_updated for t in self.tables.values())), default=None)

    @property
    def max_last_updated(self) -> dt.datetime | None:
        return max(filter(None, (t.max_last_updated for t in self.tables.values())), default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.KIND,
            "run_id": self.run_id,
            "raw_runs": self.raw_runs,
            "since": stamp(self.since),
            "snapshot_time": stamp(self.snapshot_time),
            "transformed_at": stamp(self.transformed_at),
            "min_last_updated": stamp(self.min_last_updated),
            "max_last_updated": stamp(self.max_last_updated),
            "tables": {name: t.to_json(bounded=False) for name, t in self.tables.items()},
            "quarantine": self.quarantine.to_json(bounded=False),
            "waiting": {name: t.to_json(bounded=False) for name, t in self.waiting.items()},
            "deleted": self.deleted.to_json(bounded=False),
            "raw_zone": self.raw_zone,
            "raw_url": self.raw_url,
            "raw_run_id": self.raw_run_id,
            "state": {"raw_seq": self.raw_seq, **self.state},
            "held": self.held.to_json() if self.held else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessedManifest:
        state = dict(data["state"])
        return cls(
            seq=int(data["seq"]),
            run_id=str(data["run_id"]),
            tables={n: TableFiles.from_json(t) for n, t in data["tables"].items()},
            quarantine=_quarantine(data),
            raw_runs=[int(r) for r in data["raw_runs"]],
            raw_seq=int(state.pop("raw_seq")),
            since=when(data.get("since")),
            snapshot_time=when(data.get("snapshot_time")),
            transformed_at=dt.datetime.fromisoformat(data["transformed_at"]),
            state=state,
            waiting={n: TableFiles.from_json(t) for n, t in data.get("waiting", {}).items()},
            raw_zone=data.get("raw_zone"),
            raw_url=data.get("raw_url"),
            raw_run_id=data.get("raw_run_id"),
            deleted=_files(data, "deleted"),
            held=Held.from_json(data.get("held")),
        )


def _quarantine(data: dict[str, Any]) -> TableFiles:
    """A run's quarantine files (manifests written before there was a quarantine: none)."""
    return _files(data, "quarantine")


def _files(data: dict[str, Any], name: str) -> TableFiles:
    """Files of a kind older manifests did not have (none, for them)."""
    return TableFiles.from_json(data[name]) if data.get(name) else TableFiles()


M = TypeVar("M", bound=Manifest)


def manifest_key(seq: int) -> str:
    return f"{MANIFESTS}/{seq:010d}.json"


def encode(manifest: Manifest) -> bytes:
    body = {"format": manifest.FORMAT, "seq": manifest.seq, **manifest.to_json()}
    return json.dumps(body, indent=1, default=str).encode()


# A committed manifest never changes (it is created exclusively and never rewritten), so
# within one run each is read at most once: the plan, the transform and the load share
# what the first of them read, and a manifest the run committed is never read back.
# Only within a run: a long-lived reader (the dashboard) reads anew each time, so it
# keeps nothing that grows with the lake and sees a lake restored from a copy as it is.
_run: contextvars.ContextVar[dict[tuple[str, str], Manifest] | None] = contextvars.ContextVar(
    "manifests_read", default=None
)


@contextlib.contextmanager
def one_run() -> Iterator[None]:
    """Inside: each manifest is read at most once (see above)."""
    token = _run.set({})
    try:
        yield
    finally:
        _run.reset(token)


def read(zone: Lake, key: str, kind: type[M]) -> M:
    """The manifest at `key`, checked: valid JSON, this format, this kind, this shape."""
    kept = _run.get()
    known = kept.get((zone.url, key)) if kept is not None else None
    if isinstance(known, kind):
        return known
    manifest = _parse(zone, key, kind)
    if kept is not None:
        kept[(zone.url, key)] = manifest
    return manifest


def _parse(zone: Lake, key: str, kind: type[M]) -> M:
    where = f"the manifest {zone.url}/{key}"
    body = zone.get(key)
    try:
        data = json.loads(body)
    except ValueError:
        raise RuntimeFailure(f"{where} is not valid JSON", "The lake was changed by hand") from None
    if not isinstance(data, dict):
        raise RuntimeFailure(
            f"{where} is not a manifest (a JSON {type(data).__name__}, not an object)",
            "The lake was changed by hand: restore the file from a backup or versioning",
        )
    if "kind" not in data:
        raise RuntimeFailure(
            f"{where} names no kind, so it is not a {kind.KIND} manifest",
            "The lake was changed by hand: restore the file from a backup or versioning",
        )
    if data.get("kind") != kind.KIND:
        raise RuntimeFailure(
            f"{where} is a {data.get('kind')!r} manifest, not a {kind.KIND!r} one",
            "Check that the raw and processed zones are the places they should be",
        )
    found = data.get("format")
    if found not in range(1, kind.FORMAT + 1):
        readable = "format 1" if kind.FORMAT == 1 else f"formats 1 to {kind.FORMAT}"
        raise RuntimeFailure(
            f"{where} has format {found!r}; this totesys reads {kind.KIND} manifests of {readable}",
            "Upgrade totesys",
        )
    try:
        return _sized(kind.from_json(data), body)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise RuntimeFailure(
            f"{where} is not a well-formed {kind.KIND} manifest ({type(err).__name__}: {err})",
            "The lake was changed by hand",
        ) from None


def _sized(manifest: M, body: bytes) -> M:
    manifest.size = len(body)
    return manifest


def manifests_after(zone: Lake, seq: int) -> list[tuple[int, str]]:
    """Committed manifests with a number above `seq`, oldest first.

    Listing starts after `seq`'s key, so the cost follows the number of new runs,
    not the age of the lake.
    """
    start = manifest_key(seq) if seq > 0 else None
    found = []
    for item in zone.list(f"{MANIFESTS}/", start_after=start):
        name = item.key.rsplit("/", 1)[1]
        if name.endswith(".json") and name[:-5].isdigit():
            found.append((int(name[:-5]), item.key))
    return sorted(found)


def runs_after(zone: Lake, seq: int, kind: type[M]) -> list[M]:
    return [read(zone, key, kind) for _, key in manifests_after(zone, seq)]


def latest_seq(zone: Lake) -> int:
    """The newest committed run's number (0: none): from the hint, then past it."""
    hint = 0
    with contextlib.suppress(RuntimeFailure, ValueError):
        hint = int(zone.get(LATEST_HINT).decode())
    newer = manifests_after(zone, hint)
    return newer[-1][0] if newer else hint


def latest(zone: Lake, kind: type[M]) -> M | None:
    """The newest committed manifest."""
    seq = latest_seq(zone)
    return read(zone, manifest_key(seq), kind) if seq else None


def _held(zone: Lake, manifest: Manifest) -> Held:
    """What the zone holds with this run's data files (see `held`)."""
    previous = None
    if manifest.seq > 1:
        with contextlib.suppress(RuntimeFailure):
            previous = held_with(read(zone, manifest_key(manifest.seq - 1), type(manifest)))
        if previous is None:  # listed after the run wrote its files: they count below
            previous = listed(zone, set(manifest.keys()))
    files = [f for entry in manifest.entries() for f in entry.files]
    return added(previous or Held(0, 0), files)


def commit(zone: Lake, manifest: Manifest, written: list[str], step: str) -> None:
    """Commit a run's manifest; a run that lost the race for its number removes its files
    (nothing would ever read them) and fails cleanly."""
    manifest.held = _held(zone, manifest)
    seq, body = manifest.seq, encode(manifest)
    manifest.size = len(body)
    if zone.put_new(manifest_key(seq), body):
        kept = _run.get()
        if kept is not None:  # as a reader would find it: through its JSON
            found = type(manifest).from_json(json.loads(body))
            kept[(zone.url, manifest_key(seq))] = _sized(found, body)
        try:
            zone.put(LATEST_HINT, str(seq).encode())
        except Exception as err:  # readers list past a stale hint
            log.warning("committed run %d but could not move the hint to it: %s", seq, err)
        return
    zone.delete(written)
    raise RuntimeFailure(
        f"another {step} committed run {seq} first, so this run's files were not committed "
        "and are removed",
        f"Run {step} again: it continues from the committed run",
    )
