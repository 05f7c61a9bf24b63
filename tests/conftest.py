"""Fixtures: a real PostgreSQL per test session, fresh databases per test, moto for AWS.

The server is `TOTESYS_TEST_DATABASE_URL` when set (it must allow CREATE DATABASE),
otherwise an embedded PostgreSQL started once per session. Per-test databases are
cheap copies of templates (CREATE DATABASE ... TEMPLATE).
"""

from __future__ import annotations

import compileall
import itertools
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text

import totesys_cli
from tests.support import (
    PASSWORD,
    PASSWORD_USER,
    TEST_SEED,
    TEST_SIZES,
    database,
    free_port,
    require,
    server_folder,
)
from totesys_cli.db import engine
from totesys_cli.demo import embedded, generator


def pytest_configure(config: pytest.Config) -> None:
    """Compile the package once, before any worker starts: the suite starts the installed
    command hundreds of times, and where PYTHONDONTWRITEBYTECODE is set each would
    otherwise compile every module it imports again (0.15 s a process)."""
    if sys.dont_write_bytecode and not hasattr(config, "workerinput"):
        compileall.compile_dir(Path(totesys_cli.__file__).parent, quiet=1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slowest tests first (in their order), the rest after: each worker then ends
    on short tests, instead of one worker running a long test alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@dataclass
class PgServer:
    """A PostgreSQL server we may create databases on."""

    base_url: str
    embedded_dir: Path | None

    def url(self, database: str, user: str | None = None, password: str | None = None) -> str:
        url = make_url(self.base_url).set(database=database)
        if user:
            url = url.set(username=user, password=password)
        return url.render_as_string(hide_password=False)

    def engine(self, name: str = "postgres") -> Engine:
        return engine(database(self.url(name)))

    def admin(self) -> Engine:
        return self.engine().execution_options(isolation_level="AUTOCOMMIT")

    def create_database(self, name: str, template: str | None = None) -> str:
        with self.admin().connect() as conn:
            quote = conn.dialect.identifier_preparer.quote
            conn.execute(text(f"DROP DATABASE IF EXISTS {quote(name)} WITH (FORCE)"))
            tail = f" TEMPLATE {quote(template)}" if template else ""
            conn.execute(text(f"CREATE DATABASE {quote(name)}{tail}"))
        return name

    def drop_database(self, name: str) -> None:
        with self.admin().connect() as conn:
            quote = conn.dialect.identifier_preparer.quote
            conn.execute(text(f"DROP DATABASE IF EXISTS {quote(name)} WITH (FORCE)"))


def _start_embedded(folder: Path) -> PgServer:
    server = embedded.start(folder, fast=True)
    # a password-checked role for credential tests; everything else stays trust
    hba = folder / "pg_hba.conf"
    hba.write_text(f"local all {PASSWORD_USER} scram-sha-256\n" + hba.read_text())
    pg = PgServer(server.url(), folder)
    with pg.admin().connect() as conn:
        conn.execute(text("SELECT pg_reload_conf()"))
    pg._server = server  # keep the handle alive: its last handle stops the server
    return pg


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    external = os.environ.get("TOTESYS_TEST_DATABASE_URL")
    if external:
        yield PgServer(external, None)
        return
    with server_folder("pg") as folder:
        server = _start_embedded(folder / "data")
        yield server
        server._server.handle.cleanup()


@pytest.fixture(scope="session")
def password_role(pg: PgServer) -> tuple[str, str]:
    """(user, password) of a role whose password the server really checks."""
    require(pg.embedded_dir is not None, "credential tests need the embedded server's pg_hba.conf")
    with pg.admin().connect() as conn:
        conn.execute(text(f"CREATE ROLE {PASSWORD_USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'"))
    return PASSWORD_USER, PASSWORD


@pytest.fixture(scope="session")
def source_template(pg: PgServer) -> str:
    """A generated totesys source that per-test databases copy."""
    name = pg.create_database("tpl_source")
    with pg.engine(name).begin() as conn:
        generator.generate_source(conn, TEST_SIZES, seed=TEST_SEED)
    return name


_counter = itertools.count()


def _unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{next(_counter)}"


@pytest.fixture
def source_url(pg: PgServer, source_template: str) -> Iterator[str]:
    name = pg.create_database(_unique("src"), template=source_template)
    yield pg.url(name)
    pg.drop_database(name)


@dataclass(frozen=True)
class FirstRun:
    """Template databases and a lake folder as a first `run-all` left them."""

    source: str
    warehouse: str
    lake: Path
    versions: dict[str, set[tuple]]


@pytest.fixture(scope="session")
def first_run(pg: PgServer, source_template: str, tmp_path_factory) -> FirstRun:
    """The first run most pipeline tests begin with, made once per worker through the
    installed CLI."""
    from tests.support import Pipeline

    source = pg.create_database(_unique("tpl_first_source"), template=source_template)
    warehouse = pg.create_database(_unique("tpl_first_warehouse"))
    pipeline = Pipeline(pg.url(source), pg.url(warehouse), tmp_path_factory.mktemp("first"))
    pipeline.remember()
    run = pipeline.cli("run-all")
    assert run.returncode == 0, run.stderr
    return FirstRun(source, warehouse, pipeline.lake, pipeline.versions)


@pytest.fixture
def after_first_run(pg: PgServer, first_run: FirstRun, tmp_path: Path) -> Iterator[Callable]:
    """Pipelines as the first run left them, each its own copy of the source, the lake and
    the warehouse (reached as `user` with `password`, when given)."""
    from tests.support import Pipeline

    made: list[str] = []

    def copy(user: str | None = None, password: str | None = None) -> Pipeline:
        source = pg.create_database(_unique("src"), template=first_run.source)
        made.append(source)
        warehouse = pg.create_database(_unique("db"), template=first_run.warehouse)
        made.append(warehouse)
        lake = tmp_path / ("lake" if len(made) == 2 else f"lake{len(made) // 2}")
        shutil.copytree(first_run.lake, lake)
        pipeline = Pipeline(
            pg.url(source, user, password), pg.url(warehouse, user, password), lake, init=False
        )
        pipeline.versions = {table: set(rows) for table, rows in first_run.versions.items()}
        return pipeline

    yield copy
    for name in made:
        pg.drop_database(name)


@pytest.fixture
def pipeline(pg: PgServer, source_url: str, warehouse_url: str, tmp_path: Path):
    """A pipeline over a fresh source, an empty warehouse and a lake of its own."""
    from tests.support import Pipeline

    return Pipeline(source_url, warehouse_url, tmp_path / "lake")


@pytest.fixture
def empty_db(pg: PgServer) -> Iterator[str]:
    """The name of a fresh, empty database."""
    name = pg.create_database(_unique("db"))
    yield name
    pg.drop_database(name)


@pytest.fixture
def warehouse_url(pg: PgServer, empty_db: str) -> str:
    return pg.url(empty_db)


# ---------------------------------------------------------------- AWS (moto)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-2",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on loopback, for subprocesses (AWS_ENDPOINT_URL)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def moto_endpoint(moto_server: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto server, reset, with this process and its children pointed at it."""
    import urllib.request

    reset = urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")  # noqa: S310
    urllib.request.urlopen(reset).read()  # noqa: S310 - our own loopback moto server
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


@pytest.fixture(autouse=True)
def _own_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is its own run, as each CLI process is: its own run id, and no password
    that an earlier test registered for redaction (which would hide a leak here)."""
    from totesys_cli.observe import logs

    logs.set_run_id(logs.new_run_id())
    monkeypatch.setattr(logs, "_secrets", set())
    monkeypatch.setattr(logs, "_masks", [])


@pytest.fixture(scope="session")
def loaded(pg: PgServer, source_template: str, tmp_path_factory: pytest.TempPathFactory):
    """A source and the warehouse the pipeline loaded from it, twice: the activity
    between the runs (paid payments, amended orders, a moved department) gives every
    fact a history."""
    from tests.support import Pipeline

    source = pg.create_database("loaded_source", template=source_template)
    warehouse = pg.create_database("loaded_warehouse")
    pipeline = Pipeline(pg.url(source), pg.url(warehouse), tmp_path_factory.mktemp("lake"))
    pipeline.run()
    pipeline.activity(step=1)
    with pipeline.source().begin() as conn:
        conn.execute(
            text(
                "UPDATE sales_order SET units_sold = units_sold + 7, last_updated = now() "
                "WHERE sales_order_id % 11 = 0"
            )
        )
        conn.execute(
            text(
                "UPDATE purchase_order SET item_quantity = item_quantity + 5, "
                "last_updated = now() WHERE purchase_order_id % 11 = 0"
            )
        )
    pipeline.run()
    yield pipeline
    pg.drop_database(source)
    pg.drop_database(warehouse)


@pytest.fixture
def loader(pg):
    """A role that owns its warehouse but is no superuser, and the warehouse's URL."""
    role, name = f"loader_{os.getpid()}", f"loader_wh_{os.getpid()}"
    with pg.admin().connect() as conn:
        conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        conn.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER"))
    pg.create_database(name)
    with pg.admin().connect() as conn:
        conn.execute(text(f"ALTER DATABASE {name} OWNER TO {role}"))
    yield role, pg.url(name, role)
    pg.drop_database(name)
    with pg.admin().connect() as conn:
        conn.execute(text(f"REVOKE SET ON PARAMETER session_replication_role FROM {role}"))
        conn.execute(text(f"DROP ROLE {role}"))
