"""What a transform hands to the next one, inside its processed manifest.

The parents' current rows (to rebuild the dependents of a changed parent), the key
sets each dimension has emitted (compact intervals, for referential closure), the
calendar's span, and the versions recently emitted (so that the extract's overlap
does not emit them twice). All of it is small, so a run costs what its change costs.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from totesys_cli.lake import keys as keysets
from totesys_cli.lake.manifest import ProcessedManifest
from totesys_cli.schemas import source_table
from totesys_cli.schemas.arrow import arrow_schema, version_schema
from totesys_cli.schemas.model import kept_sources
from totesys_cli.schemas.quality import ENTRY


def _json_value(value: object) -> object:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    return str(value)


def to_json(table: pa.Table) -> dict[str, list]:
    """A few hundred rows as JSON lists: readable in the manifest."""
    return {
        name: [_json_value(v) for v in table.column(name).to_pylist()]
        for name in table.column_names
    }


def from_json(data: dict[str, list] | None, schema: pa.Schema) -> pa.Table:
    """Columns back from JSON: timestamps travel as ISO text and are cast on the way in."""
    if not data:
        return schema.empty_table()
    columns = {}
    for f in schema:
        plain = (
            pa.types.is_integer(f.type) or pa.types.is_boolean(f.type) or pa.types.is_string(f.type)
        )
        columns[f.name] = pa.array(data[f.name], f.type if plain else pa.string())
    return pa.table(columns).cast(schema)


def pack(table: pa.Table) -> dict[str, str]:
    """Many versions as one base64 Parquet value: a busy source's recent versions are
    a hundred thousand rows, which as JSON lists cost most of a small run."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return {"parquet": base64.b64encode(sink.getvalue().to_pybytes()).decode()}


def unpack(data: dict[str, Any], schema: pa.Schema) -> pa.Table:
    return pq.read_table(pa.BufferReader(base64.b64decode(data["parquet"]))).cast(schema)


@dataclass
class State:
    """What the next run needs from all earlier ones."""

    raw_seq: int = 0
    parents: dict[str, pa.Table] = field(default_factory=dict)
    keys: dict[str, keysets.Intervals] = field(default_factory=dict)
    dates: tuple[dt.date, dt.date] | None = None
    seen: dict[str, pa.Table] = field(default_factory=dict)
    open: pa.Table = field(default_factory=ENTRY.empty_table)  # quarantine entries not resolved

    @classmethod
    def load(cls, manifest: ProcessedManifest | None) -> State:
        if manifest is None:
            return cls()
        data = manifest.state
        dates = data.get("dates")
        return cls(
            raw_seq=manifest.raw_seq,
            parents={
                t: from_json(data["parents"].get(t), arrow_schema(source_table(t)))
                for t in kept_sources()
            },
            keys=data["keys"],
            dates=(dt.date.fromisoformat(dates[0]), dt.date.fromisoformat(dates[1]))
            if dates
            else None,
            seen={t: unpack(v, version_schema(t)) for t, v in data["seen"].items()},
            open=unpack(data["open"], ENTRY) if "open" in data else ENTRY.empty_table(),
        )

    def dump(self) -> dict[str, Any]:
        """The state as it travels in the manifest (the manifest holds raw_seq itself)."""
        return {
            "parents": {t: to_json(v) for t, v in self.parents.items()},
            "keys": self.keys,
            "dates": [d.isoformat() for d in self.dates] if self.dates else None,
            "seen": {t: pack(v) for t, v in self.seen.items()},
            "open": pack(self.open),
        }

    def parent(self, name: str) -> pa.Table:
        return self.parents.get(name, arrow_schema(source_table(name)).empty_table())
