"""A dimension's columns by key, held once for a fill: each fact file's rows find the
labels the summaries group by (a payment's transaction type) without a hash table of
the whole dimension per file. Labels are held coded in a byte while they fit."""

from __future__ import annotations

# keys below this are held in maps of a byte per key (64 MB at most): a fact's ids, to
# find one given twice, and a dimension's labels
MAPPED_KEYS = 1 << 26


def _narrow():
    """Labels coded in a byte (127 of them at most)."""
    import pyarrow as pa

    return pa.dictionary(pa.int8(), pa.string())


class Lookup:
    """A dimension's columns by key, held once, so that each file's rows find theirs
    without a hash table of the whole dimension per file. Keys as a source numbers them
    (from 0, below MAPPED_KEYS) with labels coded in a byte are a map of a byte per key
    and label column (7 MB for 7 million transactions); other keys are sorted once, and
    found by a binary search."""

    def __init__(self, table, key: str):
        import numpy as np

        self.key = key
        self.maps = _mapped(table, key)
        if self.maps is not None:
            return
        keys = table.column(key).to_numpy()
        table = table.drop_columns([key])
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
            for name, (codes, labels) in self.maps.items():
                inside = (wanted >= 0) & (wanted < len(codes))
                code = np.where(inside, codes[np.clip(wanted, 0, len(codes) - 1)], -1)
                column = pa.array(code, pa.int8(), mask=code < 0)
                rows = rows.append_column(name, pa.DictionaryArray.from_arrays(column, labels))
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


def _mapped(table, key: str):
    """{column: (a byte per key: its label's code, -1 for none; the labels)} when every
    key lies in [0, MAPPED_KEYS) and every other column is labels coded in a byte
    (`combined`: one dictionary for all chunks); else None."""
    import numpy as np
    import pyarrow.compute as pc

    others = [f.name for f in table.schema if f.name != key]
    if not table.num_rows or any(table.schema.field(n).type != _narrow() for n in others):
        return None
    low, high = (v.as_py() for v in pc.min_max(table.column(key)).values())
    if low < 0 or high >= MAPPED_KEYS:
        return None
    maps = {}
    for name in others:
        codes = np.full(high + 1, -1, np.int8)
        for batch in table.select([key, name]).to_batches():
            codes[batch.column(0).to_numpy()] = batch.column(1).indices.fill_null(-1).to_numpy()
        maps[name] = (codes, table.column(name).chunk(0).dictionary)
    return maps


def labels_encoded(table):
    """The table's text columns dictionary-encoded: a label per key of a big dimension
    (a transaction's type) held as a byte, not as a string per row."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_string(field.type):
            codes = table.column(i).dictionary_encode()
            small = all(len(c.dictionary) <= 127 for c in codes.chunks)
            table = table.set_column(i, field.name, codes.cast(_narrow()) if small else codes)
    return table


def combined(chunks: list):
    """Chunks of `labels_encoded` rows as one table with one dictionary per column, kept
    in chunks: no second copy of the rows."""
    import pyarrow as pa

    try:
        return pa.concat_tables(chunks).unify_dictionaries()
    except pa.ArrowInvalid:  # more labels in all than the narrow codes hold
        return pa.concat_tables([_widened(c) for c in chunks]).unify_dictionaries()


def _widened(table):
    """The table's dictionary columns with codes of four bytes, for more labels."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type) and field.type.index_type != pa.int32():
            wide = pa.dictionary(pa.int32(), field.type.value_type)
            table = table.set_column(i, field.name, table.column(i).cast(wide))
    return table
