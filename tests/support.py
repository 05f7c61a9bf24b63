"""What the tests share: the installed CLI as a subprocess, the CLI in-process, and a
generated source, lake and warehouse driven step by step through the library."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text

from tests import expected
from totesys_cli.cli import cli
from totesys_cli.config.settings import parse_settings
from totesys_cli.config.urls import Database, parse_database_url
from totesys_cli.db import engine
from totesys_cli.demo import generator
from totesys_cli.demo.activity import simulate_activity
from totesys_cli.extract import ExtractOptions, extract
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.files import read_parquet
from totesys_cli.lake.manifest import ProcessedManifest
from totesys_cli.load import LoadOptions, load
from totesys_cli.ops.init import init_warehouse
from totesys_cli.runtime import Deadline
from totesys_cli.runtime.endpoints import ALL, open_endpoints
from totesys_cli.schemas import (
    FACTS,
    SOURCE_TABLES,
    STAR_TABLES,
    data_columns,
    latest_view_name,
    star_table,
)
from totesys_cli.schemas.arrow import warehouse_schema
from totesys_cli.transform import TransformOptions, transform

# the installed console script, beside the interpreter running the tests
TOTESYS = str(Path(sys.executable).parent / "totesys")
ROOT = Path(__file__).resolve().parent.parent
# the warehouse as its fixed design has it (dashboards and other teams query these names),
# written out by hand as a team would create it
SPEC_WAREHOUSE_SQL = (ROOT / "tests" / "spec_warehouse.sql").read_text()
TEST_SIZES = generator.Sizes(sales_orders=300, purchase_orders=126)
TEST_SEED = 7
PASSWORD_USER = "totesys_pw"
# grepped for in every output, as it is and as it travels in a URL: it must never appear
PASSWORD = "s3cret/Pa55:w@rd%"
ENCODED_PASSWORD = quote(PASSWORD, safe="")


def unmeasured(env: dict | None = None) -> dict[str, str]:
    """The environment (this process's, or `env`) without coverage's start-up hook: for a
    process that is not this release of totesys (pip, a linter, an earlier release) or
    one that is killed (it never writes its data), which measuring only slows down."""
    return {k: v for k, v in (env or os.environ).items() if not k.startswith("COVERAGE")}


def started(process: subprocess.Popen) -> list[str]:
    """Wait for a run started with `--log-level DEBUG` and its stderr piped to hold the
    warehouse lock (imports and set-up done), reading its log on until it ends so that
    it never blocks on a full pipe; its log lines, as they arrive."""
    ready, lines = threading.Event(), []

    def read() -> None:
        for line in process.stderr:
            lines.append(line)
            if "took the warehouse lock" in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    assert ready.wait(60), "the run never took the lock"
    return lines


def leaks(output: str) -> list[str]:
    """The forms of the test password that appear in the output (none, always)."""
    return [form for form in (PASSWORD, ENCODED_PASSWORD) if form in output]


def require(available: bool, reason: str) -> None:
    """Skip a test whose tool or setting is missing here; under CI (`CI` set) fail
    instead, so that a missing tool can never silently leave a behaviour untested."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI must run every test", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def server_folder(name: str) -> Iterator[Path]:
    """A folder for a database server of the tests' own, outside pytest's temporary
    tree: pytest keeps that private to this user, and a server runs as its own user."""
    folder = Path(tempfile.mkdtemp(prefix=f"totesys-{name}-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?")[0]


def index_last_updated(pg, url: str, tables: tuple[str, ...] | list[str] = SOURCE_TABLES) -> None:
    """An index on last_updated for these tables; and the planner told to use an index
    whenever one can answer (the small test tables would otherwise be read whole anyway,
    which is cheaper for them: what is tested is whether a run's statement can use one)."""
    name = database_name(url)
    with pg.engine(name).connect() as conn:
        for table in tables:
            conn.execute(text(f"CREATE INDEX {table}_last_updated ON {table} (last_updated)"))
        conn.execute(text(f'ALTER DATABASE "{name}" SET enable_seqscan = off'))
        conn.commit()


def database(url: str) -> Database:
    return Database("test", parse_database_url("test", url, "TEST"), "TEST")


def totesys(*args: str, env: dict | None = None, timeout: float = 120, cwd: Path | None = None):
    """The installed command as a subprocess, with the test's environment plus `env`
    (a value of None removes that variable)."""
    merged = {**os.environ, **(env or {})}
    return subprocess.run(
        [TOTESYS, *args],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in merged.items() if v is not None},
        timeout=timeout,
        cwd=cwd,
    )


def invoke(*args: str, env: dict | None = None) -> Result:
    """The command in this process (click's runner): for exit codes and exact lines."""
    return CliRunner().invoke(cli, list(args), env=env)


@dataclasses.dataclass(frozen=True)
class Ran:
    """A command run in this process, read as a finished subprocess is."""

    returncode: int
    stdout: str
    stderr: str


def run_here(*args: str, env: dict | None = None) -> Ran:
    """The command in this process with the test's environment plus `env` (a value of
    None removes that variable): the same code as the installed command without a
    process's start-up. What is about the installed command itself (kills, deadlines,
    concurrent runs, end to end) runs with `totesys`."""
    result = invoke(*args, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def lake_state(root: Path) -> dict[str, str]:
    """Every file under a lake folder, by its path, with a hash of its bytes."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


class Pipeline:
    """A source, a lake folder and a warehouse, driven through the library or the CLI."""

    def __init__(self, source_url: str, warehouse_url: str | None, folder: Path, init=True):
        self.source_url = source_url
        self.warehouse_url = warehouse_url
        self.lake = Path(folder)
        self.settings = parse_settings(
            source_url=source_url, warehouse_url=warehouse_url, lake_url=str(folder)
        )
        ends = open_endpoints(self.settings, optional=ALL)
        self.source_db, self.warehouse_db = ends.source, ends.warehouse
        self.raw, self.processed = ends.raw, ends.processed
        self.versions: dict[str, set[tuple]] = {t: set() for t in FACTS}
        # each dimension row the source has shown, as it last was, by key
        self.dimensions: dict[str, dict[int, tuple]] = {}
        self._source = self._warehouse = None  # engines, made once (they keep no connection)
        if init and self.warehouse_db is not None:
            init_warehouse(self.warehouse_db)

    def env(self, **extra: str | None) -> dict[str, str | None]:
        return {
            "TOTESYS_SOURCE_URL": self.source_url,
            "TOTESYS_WAREHOUSE_URL": self.warehouse_url,
            "TOTESYS_LAKE_URL": str(self.lake),
            **extra,
        }

    def process_env(self, **extra: str | None) -> dict[str, str]:
        """This process's environment with the pipeline's and `extra` (a value of None
        removes that variable): for a run started with Popen."""
        merged = {**os.environ, **self.env(**extra)}
        return {k: v for k, v in merged.items() if v is not None}

    def cli(self, *args: str, timeout: float = 120, **env: str | None):
        """The installed command against this pipeline's source, lake and warehouse."""
        return totesys(*args, env=self.env(**env), timeout=timeout)

    def here(self, *args: str, **env: str | None) -> Ran:
        """The command in this process against this pipeline (see `run_here`)."""
        return run_here(*args, env=self.env(**env))

    def source(self):
        if self._source is None:
            self._source = engine(database(self.source_url))
        return self._source

    def warehouse(self):
        if self._warehouse is None:
            self._warehouse = engine(database(self.warehouse_url))
        return self._warehouse

    def extract(self, **options):
        return extract(self.source_db, self.raw, ExtractOptions(**options), Deadline(None))

    def transform(self, **options):
        return transform(self.raw, self.processed, TransformOptions(**options), Deadline(None))

    def star_rows(self, table: str, seqs: list[int] | None = None) -> list[dict]:
        """The rows of a star table in the processed zone (of these runs only, if given),
        as the load reads them: with the warehouse's types."""
        rows = []
        schema = warehouse_schema(table)
        for manifest in manifests.runs_after(self.processed, 0, ProcessedManifest):
            if seqs is None or manifest.seq in seqs:
                rows += read_parquet(self.processed, manifest.files(table), schema).to_pylist()
        return rows

    def load(self, since: dt.datetime | None = None, budget: float | None = None):
        options = LoadOptions(since=since, budget=budget)
        return load(self.warehouse_db, self.processed, options, Deadline(None))

    def process(self):
        """Extract, then transform: the lake without the warehouse."""
        self.extract()
        return self.transform()

    def run(self):
        self.remember()
        self.process()
        return self.load()

    def activity(self, step: int = 1, **options):
        self.remember()
        with self.source().begin() as conn:
            return simulate_activity(conn, seed=23, step=step, **options)

    def remember(self) -> None:
        """Every fact version the source has shown so far belongs in the warehouse, and
        so does each dimension row a fact version references, deleted or not."""
        with self.source().connect() as conn:
            for fact in FACTS:
                self.versions[fact] |= set(expected.rows(conn, fact))
            for table in expected.REFERENCES:
                known = self.dimensions.setdefault(table, {})
                known.update({row[0]: row for row in expected.rows(conn, table)})

    def _dimension(self, table: str, current: list[tuple], facts: dict[str, list[tuple]]):
        """The expected rows of a dimension (see `expected.dimension`)."""
        if table not in expected.REFERENCES:
            return current
        seen = {fact: self.versions[fact] | set(rows) for fact, rows in facts.items()}
        return expected.dimension(table, current, self.dimensions.get(table, {}), seen)

    def expected(self, table: str, source=None) -> list[tuple]:
        """The independent SQL expectation of a star table (through `source`, an open
        connection to the source, if given)."""
        with contextlib.nullcontext(source) if source else self.source().connect() as conn:
            rows = expected.rows(conn, table)
        if table in FACTS:
            return sorted(self.versions[table] | set(rows))
        return rows

    def actual(self, table: str, relation: str | None = None, warehouse=None) -> list[tuple]:
        """The rows of a star table (or of `relation`) in the warehouse (through
        `warehouse`, an open connection, if given)."""
        columns = ", ".join(f'"{c}"' for c in data_columns(star_table(table)))
        query = text(f'SELECT {columns} FROM "{relation or table}"')
        with contextlib.nullcontext(warehouse) if warehouse else self.warehouse().connect() as conn:
            return sorted(tuple(r) for r in conn.execute(query))

    def assert_matches_source(self) -> None:
        """The warehouse equals the independent SQL expectation, table by table."""
        with self.source().connect() as source, self.warehouse().connect() as warehouse:
            facts = {fact: expected.rows(source, fact) for fact in FACTS}
            for table in STAR_TABLES:
                current = facts[table] if table in FACTS else expected.rows(source, table)
                if table in FACTS:
                    wanted = sorted(self.versions[table] | set(current))
                else:
                    wanted = self._dimension(table, current, facts)
                actual = self.actual(table, None, warehouse)
                if actual != wanted:
                    missing = sorted(set(wanted) - set(actual))[:5]
                    extra = sorted(set(actual) - set(wanted))[:5]
                    dupes = len(actual) - len(set(actual))
                    raise AssertionError(
                        f"{table}: missing {missing}, unexpected {extra}, duplicates {dupes}"
                    )
                if table in FACTS:
                    assert self.actual(table, latest_view_name(table), warehouse) == current, table

    def assert_current(self) -> None:
        """Dimensions and the *_latest views equal the source now; no version is twice."""
        with self.source().connect() as source, self.warehouse().connect() as warehouse:
            facts = {fact: expected.rows(source, fact) for fact in FACTS}
            for table in STAR_TABLES:
                if table in FACTS:
                    current = facts[table]
                    latest = self.actual(table, latest_view_name(table), warehouse)
                    assert latest == current, table
                    versions = self.actual(table, None, warehouse)
                    assert len(versions) == len(set(versions)), table
                    assert set(current) <= set(versions), table
                else:
                    wanted = self._dimension(table, expected.rows(source, table), facts)
                    assert self.actual(table, None, warehouse) == wanted, table

    def snapshot(self) -> dict[str, list[tuple]]:
        """Every row of every star table, serial ids included."""
        with self.warehouse().connect() as conn:
            return {
                t: sorted(tuple(r) for r in conn.execute(text(f'SELECT * FROM "{t}"')))
                for t in STAR_TABLES
            }


def committed_keys(zone, kind) -> set[str]:
    """Every manifest of the zone and every file a manifest names, read from all of
    them (the whole-lake answer gc's passes must agree with)."""
    from totesys_cli.lake import manifest as manifests
    from totesys_cli.lake.zone import IDENTITY_KEY

    keep = {manifests.LATEST_HINT, IDENTITY_KEY}
    for _, key in manifests.manifests_after(zone, 0):
        keep.add(key)
        keep.update(manifests.read(zone, key, kind).keys())
    return keep
