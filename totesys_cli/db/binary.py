"""Arrow rows in PostgreSQL's binary COPY format, encoded a column at a time.

In a text COPY the server parses every value back from its digits (a date, a time, a
numeric), which for the facts is more than half of what it does to store them; in binary
the same rows go in in less than half the server's time. Each column is encoded whole by
numpy from its Arrow buffers, as big-endian values behind their lengths; a row of fixed
widths is one numpy row, and rows with text are joined by Arrow.

A column goes in binary only when its Arrow type converts to the table's type without
loss (`_encoder`) and its values lie where numpy cannot wrap them around (`_in_range`),
checked before the COPY begins, so that an encoding never fails half-way through one.
Any other column (a decimal whose values need more than 18 digits, a timestamp with a
zone, a type the server would convert) sends the whole COPY as text, as before.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)  # no OIDs, no extension
TRAILER = struct.pack("!h", -1)
_NULL = pa.scalar(struct.pack("!i", -1), pa.binary())

_EPOCH_DAYS = 10_957  # PostgreSQL counts dates and timestamps from 2000-01-01
_EPOCH_US = _EPOCH_DAYS * 86_400 * 1_000_000
_US = {"s": 1_000_000, "ms": 1_000, "us": 1}
# the server's ranges (4714 BC to 5874897 AD, and to 294276 AD), from its epoch
_DATES = (-2_451_545, 2_145_031_949)
_TIMESTAMPS = (-211_813_488_000_000_000, 9_223_371_331_200_000_000)

# An encoder turns a column into one field per row (its length, then its bytes): a
# numpy array of a row of bytes per value when they are all one width, else Arrow binary.
# What it makes of a null slot does not matter: `rows` puts a NULL there.
Encoder = Callable[[pa.Array], "np.ndarray | pa.Array"]


def _field(values: np.ndarray) -> np.ndarray:
    """Each value (one row of `values`, big-endian bytes) behind its length."""
    rows, width = values.shape
    out = np.empty((rows, 4 + width), np.uint8)
    out[:, :4] = np.frombuffer(struct.pack("!i", width), np.uint8)
    out[:, 4:] = values
    return out


def _bytes(values: np.ndarray, kind: str) -> np.ndarray:
    big = values.astype(kind, copy=False)
    return big.view(np.uint8).reshape(len(values), big.itemsize)


def _slots(a: pa.Array, kind) -> np.ndarray:
    """The values of a fixed-width array as they lie in its buffer, null slots too."""
    return np.frombuffer(a.buffers()[1], kind)[a.offset : a.offset + len(a)]


def _integers(source, kind: str) -> Encoder:
    return lambda a: _field(_bytes(_slots(a, source), kind))


def _boolean(a: pa.Array) -> np.ndarray:
    return _field(_bytes(a.fill_null(False).to_numpy(zero_copy_only=False), "u1"))


def _date(a: pa.Array) -> np.ndarray:
    return _field(_bytes(_slots(a, np.int32).astype(np.int64) - _EPOCH_DAYS, ">i4"))


def _time(unit: str, source) -> Encoder:
    return lambda a: _field(_bytes(_slots(a, source).astype(np.int64) * _US[unit], ">i8"))


def _timestamp(unit: str) -> Encoder:
    return lambda a: _field(_bytes(_slots(a, np.int64) * _US[unit] - _EPOCH_US, ">i8"))


def _digits(kind: pa.Decimal128Type) -> int:
    """The decimal digits a value of this type may have to be encoded: its precision, but
    no more than its low 64 bits hold once its fraction is padded to base-10000 digits
    (a sum's decimal(38, 2) whose values are all smaller goes in binary too)."""
    return min(kind.precision, 18, 19 - (-kind.scale) % 4)


def _numeric(precision: int, scale: int) -> Encoder:
    """A decimal of up to 18 digits as PostgreSQL's base-10000 digits, as many as the
    type can hold (the server drops the zeros it does not need)."""
    fraction = -(-scale // 4)
    pad = 4 * fraction - scale  # decimal digits that align the fraction on base-10000 digits
    whole = -(-(precision - scale) // 4)
    digits = whole + fraction
    head = np.array([digits, whole - 1, 0, scale], ">i2")
    powers = np.array([10_000**k for k in range(digits - 1, -1, -1)], np.uint64)

    def encode(a: pa.Array) -> np.ndarray:
        # a decimal of up to 18 digits is its low 64 bits, two's complement
        low = np.frombuffer(a.buffers()[1], np.int64)[2 * a.offset : 2 * (a.offset + len(a)) : 2]
        shifted = np.abs(low).astype(np.uint64) * np.uint64(10**pad)
        values = np.empty((len(a), 4 + digits), ">i2")
        values[:, :4] = head
        values[:, 2] = np.where(low < 0, 0x4000, 0)
        values[:, 4:] = (shifted[:, None] // powers) % np.uint64(10_000)
        return _field(values.view(np.uint8).reshape(len(a), 2 * (4 + digits)))

    return encode


def _text(a: pa.Array) -> pa.Array:
    """Text's fields: the length of each value's bytes, then them."""
    binary = a.cast(pa.binary())
    lengths = pc.binary_length(binary).fill_null(0).to_numpy()
    return pc.binary_join_element_wise(_binary(_bytes(lengths, ">i4")), binary, b"")


def _binary(rows: np.ndarray) -> pa.Array:
    """A numpy array of fields as Arrow binary, a value per row."""
    rows = np.ascontiguousarray(rows)
    width = rows.shape[1]
    fixed = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), len(rows), [None, pa.py_buffer(rows)]
    )
    return fixed.cast(pa.binary())


_INTEGERS = {"smallint": ">i2", "integer": ">i4", "bigint": ">i8"}
_TEXT = ("text", "character varying")
_UNSIGNED = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}
_SIGNED = {8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}


def _encoder(kind: pa.DataType, target: str) -> Encoder | None:
    """How a column of this Arrow type goes into a column of the server's type `target`
    (`format_type` without its modifier), when no value can be lost on the way."""
    if target in _INTEGERS and pa.types.is_integer(kind):
        bits = 8 * np.dtype(_INTEGERS[target]).itemsize
        signed = pa.types.is_signed_integer(kind)
        if kind.bit_width > bits or (not signed and kind.bit_width == bits):
            return None
        source = (_SIGNED if signed else _UNSIGNED)[kind.bit_width]
        return _integers(source, _INTEGERS[target])
    if target == "boolean" and pa.types.is_boolean(kind):
        return _boolean
    if target == "date" and pa.types.is_date32(kind):
        return _date
    if target == "time without time zone" and kind in (pa.time32("s"), pa.time32("ms")):
        return _time(kind.unit, np.int32)
    if target == "time without time zone" and kind == pa.time64("us"):
        return _time("us", np.int64)
    if target == "timestamp without time zone" and pa.types.is_timestamp(kind):
        return _timestamp(kind.unit) if kind.tz is None and kind.unit in _US else None
    if target == "numeric" and pa.types.is_decimal128(kind) and 0 <= kind.scale <= _digits(kind):
        return _numeric(_digits(kind), kind.scale)
    if target in _TEXT and pa.types.is_string(kind):
        return _text
    return None


def _in_range(column: pa.ChunkedArray) -> bool:
    """Whether every value converts exactly, not only its type: numpy would wrap a date,
    a timestamp or a decimal around silently where the server would have refused it."""
    kind = column.type
    if column.length() == column.null_count:
        return True
    if pa.types.is_decimal128(kind):
        low, high = (abs(v.as_py()) for v in pc.min_max(column).values())
        return max(low, high) < 10 ** (_digits(kind) - kind.scale)
    if pa.types.is_timestamp(kind) or pa.types.is_date32(kind):
        wide = pa.int64() if pa.types.is_timestamp(kind) else pa.int32()
        low, high = (v.as_py() for v in pc.min_max(column.cast(wide)).values())
        if pa.types.is_date32(kind):
            return _DATES[0] <= low - _EPOCH_DAYS and high - _EPOCH_DAYS < _DATES[1]
        unit = _US[kind.unit]
        return _TIMESTAMPS[0] <= low * unit - _EPOCH_US and high * unit - _EPOCH_US < min(
            _TIMESTAMPS[1], 2**63 - _EPOCH_US
        )
    return True


def encoders(table: pa.Table, targets: list[str | None]) -> list[Encoder] | None:
    """An encoder per column of the table, for columns of the server's types `targets`
    (None: not found), or None when any column cannot go in binary without loss."""
    found = [_encoder(f.type, t) if t else None for f, t in zip(table.schema, targets, strict=True)]
    if any(e is None for e in found):
        return None
    if not all(_in_range(column) for column in table.columns):
        return None
    return found  # type: ignore[return-value]


def rows(batch: pa.RecordBatch, encode: list[Encoder]) -> memoryview:
    """The batch's rows in the binary format: the count of fields, then each field."""
    count = np.frombuffer(struct.pack("!h", batch.num_columns), np.uint8)
    runs: list[list] = [[np.broadcast_to(count, (batch.num_rows, 2))]]  # fields side by side
    for column, encoder in zip(batch.columns, encode, strict=True):
        field = encoder(column)
        if column.null_count:
            field = pc.if_else(column.is_valid(), _as_arrow(field), _NULL)
        if isinstance(field, np.ndarray) and isinstance(runs[-1][0], np.ndarray):
            runs[-1].append(field)
        else:
            runs.append([field])
    parts = [np.hstack(run) if isinstance(run[0], np.ndarray) else run[0] for run in runs]
    if len(parts) == 1:  # every field of one width: a row is a numpy row
        return memoryview(parts[0].reshape(-1))
    joined = pc.binary_join_element_wise(*(_as_arrow(p) for p in parts), b"")
    ends = np.frombuffer(joined.buffers()[1], np.int32)
    first, last = ends[joined.offset], ends[joined.offset + len(joined)]
    return memoryview(joined.buffers()[2])[first:last]


def _as_arrow(field: np.ndarray | pa.Array) -> pa.Array:
    return _binary(field) if isinstance(field, np.ndarray) else field


def stream(table: pa.Table, encode: list[Encoder], rows_per_message: int) -> Iterator:
    """The whole COPY: its header, the rows a message at a time, its trailer."""
    yield HEADER
    for batch in table.to_batches(max_chunksize=rows_per_message):
        yield rows(batch, encode)
    yield TRAILER
