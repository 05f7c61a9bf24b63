"""Referential closure: every dimension key a processed run's facts reference was
emitted by this run or an earlier one, so nothing dangling ever reaches the warehouse.
A fact version that references a key not emitted yet waits for it instead."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from totesys_cli.lake import keys as keysets
from totesys_cli.schemas import quality, star


class Closure:
    """The key sets each dimension has emitted, as compact intervals."""

    def __init__(self, keys: dict[str, keysets.Intervals]):
        self.keys = {k: list(map(list, v)) for k, v in keys.items()}

    def add(self, dimension: str, rows: pa.Table) -> None:
        if rows.num_rows:
            self.keys[dimension] = keysets.add(
                self.keys.get(dimension, []), rows.column(star(dimension).key).to_numpy()
            )

    def dangling(self, name: str, rows: pa.Table, findings: quality.Findings) -> None:
        """Rows referencing a dimension key no run has emitted are set aside, naming the
        column (the calendar is continuous over every referenced date: not checked)."""
        for column, target in star(name).references.items():
            values = rows.column(column)
            absent = keysets.missing(self.keys.get(target, []), values.drop_null().to_numpy())
            if absent.size:
                findings.add(
                    pc.is_in(values, value_set=pa.array(absent, values.type)),
                    column,
                    values,
                    quality.MISSING_PARENT,
                    f"references a {target} row no processed run has emitted",
                )
