"""Where each table's extraction stands, carried from raw manifest to raw manifest: its
watermark and snapshot, an unfinished pass over its keys, and the newest census of the
source's keys (what deletions are found against)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


def stamp(value: dt.datetime | None) -> str | None:
    return value.isoformat(sep=" ") if value is not None else None


def when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class Pass:
    """A table's change window read in primary-key ranges over several runs (a first
    load, a backlog): the window as the run that began it fixed it, and how far it got."""

    snapshot: dt.datetime  # S0, of the run that began it: the table's snapshot once done
    xids: str  # S0's transactions
    lower: dt.datetime | None  # the window: last_updated > lower (None: every row) ...
    late: str | None  # ... or written by a transaction these did not see ...
    since: dt.datetime | None  # ... or last_updated >= since
    after: int  # every key up to this one is read; the next run reads the keys above
    first: int  # the table's smallest key when the pass began, its largest at the
    last: int  # last run (for progress)
    rows: int  # read so far
    runs: int  # runs so far
    newest: dt.datetime | None = None  # the largest last_updated read so far
    running: tuple[int, ...] | None = None  # S0's transactions in progress (see TableState)
    sweep: bool = False  # the window reads every version written since the table's sweep

    @property
    def done(self) -> float:
        """The share of the key range read, 0 to 1."""
        span = self.last - self.first
        return 1.0 if span <= 0 else min(max((self.after - self.first) / span, 0.0), 1.0)

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot": stamp(self.snapshot),
            "xids": self.xids,
            "lower": stamp(self.lower),
            "late": self.late,
            "since": stamp(self.since),
            "after": self.after,
            "first": self.first,
            "last": self.last,
            "rows": self.rows,
            "runs": self.runs,
            "newest": stamp(self.newest),
            **_running(self.running),
            **({"sweep": True} if self.sweep else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pass:
        return cls(
            snapshot=dt.datetime.fromisoformat(data["snapshot"]),
            xids=str(data["xids"]),
            lower=when(data.get("lower")),
            late=data.get("late"),
            since=when(data.get("since")),
            after=int(data["after"]),
            first=int(data["first"]),
            last=int(data["last"]),
            rows=int(data["rows"]),
            runs=int(data["runs"]),
            newest=when(data.get("newest")),
            running=_ids(data.get("running")),
            sweep=bool(data.get("sweep", False)),
        )


@dataclass(frozen=True)
class TableState:
    """Where a table's extraction stands: the newest version read (W), when (S), and
    the source's transactions as that snapshot saw them (`pg_current_snapshot()` as
    text, xmin:xmax:in-progress; None before they were recorded), with the top-level
    ones then in progress (`running`: a row with an older last_updated can only come
    from one of them committing since, or from a write that left last_updated as it
    was; None before they were recorded); the snapshot as of which every version of the
    table was read whatever its last_updated (its sweep: time and transactions); and
    its unfinished pass, if a run stopped in the middle of one."""

    watermark: dt.datetime | None
    snapshot: dt.datetime
    xids: str | None = None
    passing: Pass | None = None
    running: tuple[int, ...] | None = None
    swept: dt.datetime | None = None
    swept_xids: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "watermark": stamp(self.watermark),
            "snapshot": stamp(self.snapshot),
            **({"xids": self.xids} if self.xids else {}),
            **({"pass": self.passing.to_json()} if self.passing else {}),
            **_running(self.running),
            **({"swept": stamp(self.swept)} if self.swept else {}),
            **({"swept_xids": self.swept_xids} if self.swept_xids else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableState:
        return cls(
            when(data.get("watermark")),
            dt.datetime.fromisoformat(data["snapshot"]),
            data.get("xids"),
            Pass.from_json(data["pass"]) if data.get("pass") else None,
            _ids(data.get("running")),
            when(data.get("swept")),
            data.get("swept_xids"),
        )


def _running(ids: tuple[int, ...] | None) -> dict[str, Any]:
    return {} if ids is None else {"running": list(ids)}


def _ids(data: list | None) -> tuple[int, ...] | None:
    return None if data is None else tuple(int(x) for x in data)


def lower_bound(state: TableState | None, overlap: dt.timedelta) -> dt.datetime | None:
    """Where the next read of a table starts: min(W, S - overlap), so a row a transaction
    shorter than the overlap committed late is still caught; None for a table never
    extracted (read everything)."""
    if state is None:
        return None
    behind = state.snapshot - overlap
    return behind if state.watermark is None else min(state.watermark, behind)


@dataclass(frozen=True)
class Census:
    """The source's keys as one extract's snapshot held them (a comparison of keys, see
    `extract.deletes`), by table, as merged [low, high] intervals. Later manifests carry
    which run took it and when; only that run's own manifest holds the keys."""

    seq: int
    time: dt.datetime
    keys: dict[str, list[list[int]]] | None = None

    def carried(self) -> Census:
        return Census(self.seq, self.time)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"seq": self.seq, "time": stamp(self.time)}
        if self.keys is not None:
            data["keys"] = self.keys
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Census | None:
        if not data:
            return None
        keys = data.get("keys")
        if keys is not None:
            keys = {table: [[int(a), int(b)] for a, b in runs] for table, runs in keys.items()}
        return cls(int(data["seq"]), dt.datetime.fromisoformat(data["time"]), keys)
