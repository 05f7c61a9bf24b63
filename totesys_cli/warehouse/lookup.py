"""A dimension's columns by key, held once for a fill: each fact file's rows find the
labels the summaries group by (a payment's transaction type) without a hash table of
the whole dimension per file. Labels are held coded in a byte while they fit."""

from __future__ import annotations

from collections.abc import Callable, Iterable

# maps of a byte per key are at most this long (64 MB): a fact's ids from 0, to find
# one given twice, and a dimension's labels over the span of its keys
MAPPED_KEYS = 1 << 26
# labels a byte codes (its negative values stand for none)
BYTE_LABELS = 127


class _Unmapped(Exception):
    """Keys spanning MAPPED_KEYS or more, or more labels than a byte codes."""


class Lookup:
    """A dimension's columns by key, held once, so that each file's rows find theirs
    without a hash table of the whole dimension per file. Keys as a source numbers them
    (spanning fewer than MAPPED_KEYS) with at most BYTE_LABELS labels per column are a
    map of a byte per key of their span and column: the label's code (7 MB for 7
    million transactions, and for a backlog's file only its span). Other keys are
    sorted once, and found by a binary search."""

    def __init__(self, table, key: str, maps: _Maps | None = None):
        """From a whole table of the key and label columns, or from `maps` filled as
        the dimension was read (see `read`)."""
        self.key = key
        self.maps = maps if maps is not None else _Maps.fitting(table.to_batches(), key)
        if self.maps is None:
            self._sort(table)

    @classmethod
    def read(cls, chunks: Callable[[], Iterable], key: str) -> Lookup:
        """From the chunks `chunks()` reads, each marked in the map and let go as it
        arrives, so a big dimension is never held whole; read again, whole, to be
        sorted, when they do not fit a map."""
        maps = _Maps.fitting(chunks(), key)
        if maps is not None:
            return cls(None, key, maps)
        return cls(combined(list(chunks())), key)

    def _sort(self, table) -> None:
        import numpy as np

        keys = table.column(self.key).to_numpy()
        table = table.drop_columns([self.key])
        if np.any(keys[1:] < keys[:-1]):
            order = np.argsort(keys, kind="stable")
            keys, table = keys[order], table.take(order)
        self.keys, self.table = keys, table

    def join(self, rows):
        """The rows with the dimension's columns appended (null where it lacks the key,
        as a left outer join)."""
        import numpy as np
        import pyarrow as pa

        wanted = rows.column(self.key).to_numpy()
        if self.maps is not None:
            for name, column in self.maps.joined(wanted).items():
                rows = rows.append_column(name, column)
            return rows
        if len(self.keys) == 0:
            positions = pa.nulls(len(wanted), pa.int64())
        else:
            at = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
            positions = pa.array(at, mask=self.keys[at] != wanted)
        found = self.table.take(positions)
        for name in self.table.column_names:
            rows = rows.append_column(name, found.column(name))
        return rows


class _Maps:
    """Per label column, a byte per key from the lowest: the code of the key's label, or
    -1 for none (a key the dimension lacks, or a NULL label); filled chunk by chunk,
    growing to the keys' span."""

    def __init__(self, names: list[str]):
        import numpy as np

        self.low = 0
        self.codes = {n: np.zeros(0, np.int8) for n in names}
        self.labels: dict[str, dict] = {n: {} for n in names}
        self.types: dict[str, object] = {}

    @classmethod
    def fitting(cls, chunks: Iterable, key: str) -> _Maps | None:
        """The maps of the chunks (Arrow tables or batches of the key and label
        columns); None when they do not fit (known once every chunk is read: a COPY
        left half-read costs its connection), or hold no rows."""
        maps, fits = None, True
        for chunk in chunks:
            if maps is None:
                maps = cls([n for n in chunk.schema.names if n != key])
            try:
                if fits:
                    maps._add(chunk, key)
            except _Unmapped:
                fits = False
        return maps if fits and maps is not None and maps.width else None

    @property
    def width(self) -> int:
        return len(next(iter(self.codes.values()), ()))

    def _add(self, chunk, key: str) -> None:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if not chunk.num_rows:
            return
        keys = np.asarray(pc.cast(chunk.column(key), pa.int64()))
        self._span(int(keys.min()), int(keys.max()))
        at = keys - self.low
        for name, codes in self.codes.items():
            column = chunk.column(name)
            if not pa.types.is_dictionary(column.type):
                column = column.dictionary_encode()
            pieces = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            start = 0
            for piece in pieces:
                self.types[name] = piece.dictionary.type
                ours = self._codes(name, piece.dictionary.to_pylist())
                found = piece.indices.fill_null(-1).to_numpy(zero_copy_only=False)
                part = at[start : start + len(piece)]
                codes[part] = np.where(found >= 0, ours[np.maximum(found, 0)], -1)
                start += len(piece)

    def _span(self, low: int, high: int) -> None:
        """Grow the maps to cover [low, high]: upwards by doubling (a dimension read in
        key order grows a chunk at a time), downwards as far as needed."""
        import numpy as np

        width = self.width
        if not width:
            self.low = low
        start = min(self.low, low)
        end = max(self.low + width, high + 1)
        if end - start > MAPPED_KEYS:
            raise _Unmapped
        if start == self.low and end <= self.low + width:
            return
        if end > self.low + width:
            end = min(max(end, self.low + 2 * width), start + MAPPED_KEYS)
        for name, codes in self.codes.items():
            grown = np.full(end - start, -1, np.int8)
            grown[self.low - start : self.low - start + width] = codes
            self.codes[name] = grown
        self.low = start

    def _codes(self, name: str, labels: list) -> object:
        """This column's codes for a chunk's labels, new labels taking the next ones."""
        import numpy as np

        held = self.labels[name]
        for label in labels:
            held.setdefault(label, len(held))
        if len(held) > BYTE_LABELS:
            raise _Unmapped
        return np.array([held[label] for label in labels] or [-1], np.int8)

    def joined(self, wanted) -> dict:
        """Per label column, the labels of the keys `wanted` (null for none)."""
        import numpy as np
        import pyarrow as pa

        at = wanted.astype(np.int64) - self.low
        found = {}
        for name, codes in self.codes.items():
            inside = (at >= 0) & (at < len(codes))
            code = np.where(inside, codes[np.clip(at, 0, max(len(codes) - 1, 0))], -1)
            labels = pa.array(list(self.labels[name]), self.types[name])
            column = pa.array(code, pa.int8(), mask=code < 0)
            found[name] = pa.DictionaryArray.from_arrays(column, labels)
        return found


def labels_encoded(table):
    """The table's text columns dictionary-encoded: a label per key of a big dimension
    (a transaction's type) read as a code, not as a string per row."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type):
            table = table.set_column(i, field.name, table.column(i).dictionary_encode())
    return table


def combined(chunks: list):
    """Chunks of `labels_encoded` rows as one table with one dictionary per column, kept
    in chunks: no second copy of the rows."""
    import pyarrow as pa

    return pa.concat_tables(chunks).unify_dictionaries()
