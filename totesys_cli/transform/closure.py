"""Referential closure: every dimension key a processed run's facts reference was
emitted by this run or an earlier one, so nothing dangling ever reaches the warehouse."""

from __future__ import annotations

import pyarrow as pa

from totesys_cli.errors import RuntimeFailure
from totesys_cli.schemas import star
from totesys_cli.transform import keys as keysets


class Closure:
    """The key sets each dimension has emitted, as compact intervals."""

    def __init__(self, keys: dict[str, keysets.Intervals]):
        self.keys = {k: list(map(list, v)) for k, v in keys.items()}

    def add(self, dimension: str, rows: pa.Table) -> None:
        if rows.num_rows:
            self.keys[dimension] = keysets.add(
                self.keys.get(dimension, []), rows.column(star(dimension).key).to_numpy()
            )

    def check(self, name: str, rows: pa.Table) -> None:
        """Fail, naming the keys and the tables to extract, if a reference is dangling
        (the calendar is continuous over every referenced date, so it is not checked)."""
        gaps, sources = [], []
        for column, target in star(name).references.items():
            values = rows.column(column).drop_null().to_numpy()
            absent = keysets.missing(self.keys.get(target, []), values)
            if absent.size:
                shown = ", ".join(str(k) for k in absent[:5])
                more = f" and {absent.size - 5} more" if absent.size > 5 else ""
                gaps.append(f"{column} {shown}{more} ({target})")
                source = star(target).source
                if source not in sources:
                    sources.append(source)
        if gaps:
            tables = " ".join(f"--table {s}" for s in sources)
            raise RuntimeFailure(
                f"{name} references keys no processed run has emitted: {'; '.join(gaps)}; "
                "nothing was committed",
                f"Extract {', '.join(sources)} (totesys extract {tables}) and transform again",
            )
