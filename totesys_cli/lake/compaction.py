"""Compaction records: which large file now holds each small file of a closed day.

`lake compact` rewrites the small files that a day's committed runs wrote of each table
into a few large ones, in the same partition: their rows in order, in row groups of up
to `GROUP_ROWS` rows, the record naming where each small file's rows are (a row group,
an offset, a count). The day's record, `_compactions/<day>.json`, is created
exclusively once every large file is in place: before it, no reader sees a change;
after it, the small files are garbage for `lake gc` once its grace has passed.

Readers keep reading a run's own files. Only when one is gone do they look up the
record of its day (named in its key) and read its rows from the large file: the same
rows, in the same order, with the same types. A run reads no record at all while its files exist.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from totesys_cli.errors import RuntimeFailure
from totesys_cli.lake.held import Held, held_with
from totesys_cli.lake.store import Lake, MissingFile

COMPACTIONS = "_compactions"
LATEST_HINT = f"{COMPACTIONS}/_latest"
FORMAT = 1
# the rows of a large file's row group: few groups for a reader to open, and a bounded
# group to decode for one small file's rows
GROUP_ROWS = 131_072
# large files a run keeps at hand while it reads the small files of a compacted day
KEPT_BYTES = 256 * 1024 * 1024

_DAY = re.compile(r"/[a-z]+_date=(\d{4}-\d{2}-\d{2})/")


@dataclass(frozen=True)
class Part:
    """Where a small file's rows are in its large file."""

    key: str  # the small file
    group: int  # the row group they are in
    offset: int  # the first of them in the row group
    rows: int

    def to_json(self) -> list:
        return [self.key, self.group, self.offset, self.rows]

    @classmethod
    def from_json(cls, data: list) -> Part:
        key, group, offset, rows = data
        return cls(str(key), int(group), int(offset), int(rows))


@dataclass(frozen=True)
class Compacted:
    """A large file and the small files it replaces, in order."""

    key: str
    rows: int
    bytes: int
    parts: list[Part]


@dataclass
class Record:
    """One compacted day of one zone."""

    day: dt.date
    compacted_at: dt.datetime  # UTC, naive
    seq: int  # the newest run committed when the day was compacted
    tables: dict[str, list[Compacted]] = field(default_factory=dict)
    replaced: Held = field(default_factory=lambda: Held(0, 0))  # the small files
    # what every compaction up to this one changes in the zone once gc has reclaimed
    # the small files: the large files in, the small ones out (see `held`)
    net: Held = field(default_factory=lambda: Held(0, 0))

    def files(self) -> list[Compacted]:
        return [f for files in self.tables.values() for f in files]

    def keys(self) -> set[str]:
        """The large files: committed with the record."""
        return {f.key for f in self.files()}

    def parts(self) -> set[str]:
        """The small files they replace."""
        return {p.key for f in self.files() for p in f.parts}

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "compaction",
            "format": FORMAT,
            "day": self.day.isoformat(),
            "compacted_at": self.compacted_at.isoformat(sep=" "),
            "seq": self.seq,
            "tables": {
                name: [
                    {
                        "key": f.key,
                        "rows": f.rows,
                        "bytes": f.bytes,
                        "parts": [p.to_json() for p in f.parts],
                    }
                    for f in files
                ]
                for name, files in self.tables.items()
            },
            "replaced": self.replaced.to_json(),
            "net": self.net.to_json(),
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), indent=1).encode()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        return cls(
            day=dt.date.fromisoformat(data["day"]),
            compacted_at=dt.datetime.fromisoformat(data["compacted_at"]),
            seq=int(data["seq"]),
            tables={
                name: [
                    Compacted(
                        f["key"],
                        int(f["rows"]),
                        int(f["bytes"]),
                        [Part.from_json(p) for p in f["parts"]],
                    )
                    for f in files
                ]
                for name, files in data["tables"].items()
            },
            replaced=Held.from_json(data["replaced"]) or Held(0, 0),
            net=Held.from_json(data["net"]) or Held(0, 0),
        )


def record_key(day: dt.date) -> str:
    return f"{COMPACTIONS}/{day.isoformat()}.json"


def day_of(key: str) -> dt.date | None:
    """The day of the partition a data file is in (None: not in a day's partition)."""
    found = _DAY.search(key)
    return dt.date.fromisoformat(found.group(1)) if found else None


def read(zone: Lake, day: dt.date) -> Record | None:
    """The day's record (None: the day is not compacted)."""
    key = record_key(day)
    try:
        body = zone.get(key)
    except MissingFile:
        return None
    try:
        data = json.loads(body)
        if data.get("kind") != "compaction" or data.get("format") != FORMAT:
            raise ValueError(f"kind {data.get('kind')!r}, format {data.get('format')!r}")
        return Record.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise RuntimeFailure(
            f"the compaction record {zone.url}/{key} is not one this totesys reads ({err})",
            "The lake was changed by hand, or by a newer totesys: upgrade totesys",
        ) from None


def _days_after(zone: Lake, day: dt.date | None) -> list[dt.date]:
    """The compacted days after `day` (every one, without it), oldest first: a listing
    from that day on, so its cost follows the days since."""
    start = record_key(day) if day is not None else None
    found = []
    for item in zone.list(f"{COMPACTIONS}/", start_after=start):
        name = item.key.rsplit("/", 1)[1]
        if name.endswith(".json"):
            with contextlib.suppress(ValueError):
                found.append(dt.date.fromisoformat(name[:-5]))
    return sorted(found)


def records_after(zone: Lake, day: dt.date | None) -> list[Record]:
    """The records of the days after `day` (every record, without it), oldest first."""
    return [r for r in (read(zone, d) for d in _days_after(zone, day)) if r is not None]


@dataclass(frozen=True)
class Newest:
    """The newest compacted day, and the running total of what compactions changed."""

    day: dt.date
    net: Held

    def encode(self) -> bytes:
        return json.dumps({"day": self.day.isoformat(), "net": self.net.to_json()}).encode()


def newest(zone: Lake) -> Newest | None:
    """The newest compacted day (None: none): from the hint, a few bytes, or from the
    newest record past it (a record names every small file of its day: it is not read
    when the hint is current)."""
    hint = None
    with contextlib.suppress(RuntimeFailure, ValueError, KeyError, TypeError):
        data = json.loads(zone.get(LATEST_HINT))
        hint = Newest(dt.date.fromisoformat(data["day"]), Held.from_json(data["net"]) or Held(0, 0))
    later = _days_after(zone, hint.day if hint else None)
    record = read(zone, later[-1]) if later else None
    return Newest(record.day, record.net) if record is not None else hint


def held(zone: Lake, manifest: Any) -> Held | None:
    """What the zone holds: as its newest manifest counted it (see `lake.held`), with
    what the compactions changed, as `lake gc` leaves the zone (None: counted by no run)."""
    counted = held_with(manifest) if manifest is not None else Held(0, 0)
    if counted is not None and (compacted := newest(zone)) is not None:
        counted += compacted.net
    return counted


# what one run has read of compacted days: records by day, large files by key
_kept: contextvars.ContextVar[_Kept | None] = contextvars.ContextVar("compacted_read", default=None)


@dataclass
class _Kept:
    records: dict[tuple[str, dt.date], Record | None] = field(default_factory=dict)
    files: OrderedDict[tuple[str, str], bytes] = field(default_factory=OrderedDict)
    group: tuple[tuple[str, str, int], pa.Table] | None = None  # the last row group decoded


@contextlib.contextmanager
def one_run() -> Iterator[None]:
    """Inside: a day's record is read once, and the large files last read are kept (up to
    `KEPT_BYTES`) with the row group last decoded, so a run reading a compacted day's
    runs one by one gets each file once and decodes each row group once."""
    token = _kept.set(_Kept())
    try:
        yield
    finally:
        _kept.reset(token)


def rows_of(zone: Lake, key: str) -> pa.Table | None:
    """The rows of the small file `key`, from the large file holding them (None: no
    compaction of its day replaced it)."""
    day = day_of(key)
    if day is None:
        return None
    kept = _kept.get() or _Kept()
    if (zone.url, day) not in kept.records:
        kept.records[(zone.url, day)] = read(zone, day)
    record = kept.records[(zone.url, day)]
    for file in record.files() if record is not None else []:
        for part in file.parts:
            if part.key == key:
                return _group(zone, file.key, part.group, kept).slice(part.offset, part.rows)
    return None


def _group(zone: Lake, key: str, group: int, kept: _Kept) -> pa.Table:
    """A row group of a large file, decoded once for the small files it holds."""
    if kept.group is None or kept.group[0] != (zone.url, key, group):
        data = _large(zone, key, kept)
        kept.group = (
            (zone.url, key, group),
            pq.ParquetFile(pa.BufferReader(data)).read_row_group(group),
        )
    return kept.group[1]


def _large(zone: Lake, key: str, kept: _Kept) -> bytes:
    found = kept.files.get((zone.url, key))
    if found is None:
        found = zone.get(key)
        kept.files[(zone.url, key)] = found
        while sum(len(b) for b in kept.files.values()) > KEPT_BYTES and len(kept.files) > 1:
            kept.files.popitem(last=False)
    else:
        kept.files.move_to_end((zone.url, key))
    return found
