"""What totesys relies on inside pg8000, in one place.

pg8000 has no public way to read COPY out in large blocks or to change a connection's
socket timeout once it is open, so two jobs use its private attributes: the COPY reader
(`_sock`, the buffered socket, and `_transaction_status`) and the connection set-up
(`_usock`, the raw socket, whose timeout is long only after the handshake). The pg8000
releases this is known to work with are bounded in `pyproject.toml`; `check` says in
one line what changed if a release moves them.
"""

from __future__ import annotations

from importlib import metadata

from totesys_cli.errors import RuntimeFailure

INTERNALS = ("_sock", "_usock", "_transaction_status")


def declared() -> str:
    """The pg8000 releases the project declares (from its own metadata)."""
    for line in metadata.requires("totesys") or []:
        if line.startswith("pg8000"):
            return line.split(";")[0]
    return "pg8000"


def check(raw: object) -> None:
    """Fail in one line, naming the reason, if pg8000 no longer has what totesys reads."""
    missing = [name for name in INTERNALS if not hasattr(raw, name)]
    if missing:
        raise RuntimeFailure(
            f"pg8000 {metadata.version('pg8000')} has no {', '.join(missing)}, which totesys "
            "uses; this pg8000 release is not one totesys is known to work with",
            f"Install {declared()}",
        )


def set_read_timeout(raw, seconds: float) -> None:
    """Reads may take this long from now on (the handshake had the connect timeout)."""
    check(raw)
    raw._usock.settimeout(seconds)


def buffered_socket(raw):
    """The connection's buffered socket, for reading COPY out in large blocks."""
    check(raw)
    return raw._sock


def ready_for_query(raw, status: bytes) -> None:
    """Tell pg8000 the server is ready again, as its own message loop would."""
    raw._transaction_status = status
