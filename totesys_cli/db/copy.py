"""COPY in both directions: the bulk path of extract and load.

COPY out reads the connection's socket itself (see `driver`), because pg8000's own COPY
handles one row at a time through several Python calls, which costs twice a psql COPY.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator

import pg8000.dbapi
from sqlalchemy import Connection

from totesys_cli.db import binary, catalog, driver
from totesys_cli.errors import RuntimeFailure

_LENGTH = struct.Struct("!i").unpack_from
_COPY_DATA, _ERROR, _READY = ord("d"), ord("E"), ord("Z")


class Chunk(bytearray):
    """Rows of a COPY, as their bytes, knowing how many rows they are."""

    rows = 0


def copy_out(conn: Connection, sql: str, rows_per_chunk: int) -> Iterator[Chunk]:
    """Run `COPY (...) TO STDOUT` and yield its bytes, at most `rows_per_chunk` rows at a
    time, so one scan reads a table of any size in bounded memory.

    This reads the simple-query protocol in large blocks and strips the message headers
    in one tight loop, on the connection's own socket and inside its transaction. The
    server sends one CopyData message per row, so a chunk ends on a row boundary. While
    a chunk is being consumed the server waits on the socket; if the consumer stops
    before the end, the connection is mid-COPY and is discarded.
    """
    raw = conn.connection.driver_connection
    sock = driver.buffered_socket(raw)
    payload = sql.encode() + b"\0"
    sock.write(b"Q" + struct.pack("!i", len(payload) + 4) + payload)
    sock.flush()
    out = Chunk()
    rows = 0
    pending = b""
    error: dict[str, str] | None = None
    finished = False
    try:
        while True:
            try:
                block = sock.read1(1 << 20)
            except OSError as err:
                raise RuntimeFailure(f"the source stopped answering during COPY: {err}") from None
            if not block:
                raise RuntimeFailure("the source closed the connection during COPY")
            buf = pending + block if pending else block
            view = memoryview(buf)
            size, pos = len(buf), 0
            while pos + 5 <= size:
                end = pos + 1 + _LENGTH(buf, pos + 1)[0]
                if end > size:
                    break
                code = buf[pos]
                if code == _COPY_DATA:
                    out += view[pos + 5 : end]
                    rows += 1
                    if rows == rows_per_chunk:
                        out.rows = rows
                        yield out
                        out, rows = Chunk(), 0
                elif code == _ERROR:
                    error = _error_fields(bytes(view[pos + 5 : end]))
                elif code == _READY:
                    driver.ready_for_query(raw, bytes(view[pos + 5 : end]))
                    finished = True
                    if error is not None:
                        raise pg8000.dbapi.DatabaseError(error)
                    if out:
                        out.rows = rows
                        yield out
                    return
                pos = end
            pending = bytes(view[pos:])
    finally:
        if not finished:
            conn.invalidate()


def _error_fields(data: bytes) -> dict[str, str]:
    return {f[:1].decode(): f[1:].decode(errors="replace") for f in data.split(b"\0") if f}


# rows per CopyData message of copy_in: a few MB, so what a COPY holds besides its Arrow
# table is bounded by this, never by the table's size
COPY_IN_ROWS = 32_768


def copy_in(conn: Connection, target: str, arrow_table) -> None:
    """`COPY target (columns) FROM STDIN` of an Arrow table, through pg8000's own COPY, a
    slice of COPY_IN_ROWS rows per message: in the binary format when every column
    converts to the target's type without loss (see `binary`), else as CSV."""
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(n) for n in arrow_table.column_names)
    name = ".".join(quote(part) for part in target.split("."))
    kinds = catalog.column_types(conn, name)
    encode = binary.encoders(arrow_table, [kinds.get(n) for n in arrow_table.column_names])
    if encode is None:
        stream, form = _csv(arrow_table), "csv"
    else:
        stream, form = binary.stream(arrow_table, encode, COPY_IN_ROWS), "binary"
    cursor = conn.connection.driver_connection.cursor()
    cursor.execute(f"COPY {name} ({columns}) FROM STDIN WITH (FORMAT {form})", stream=stream)


def _csv(arrow_table) -> Iterator[bytes]:
    """The table as CSV, a slice of COPY_IN_ROWS rows at a time."""
    import pyarrow.csv as pcsv

    options = pcsv.WriteOptions(include_header=False, quoting_style="needed")
    for batch in arrow_table.to_batches(max_chunksize=COPY_IN_ROWS):
        sink = io.BytesIO()
        pcsv.write_csv(batch, sink, options)
        yield sink.getvalue()
