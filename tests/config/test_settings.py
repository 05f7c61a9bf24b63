"""Settings: URLs, TLS, sockets, and Secrets Manager in both spellings."""

from __future__ import annotations

import json
import ssl

import boto3
import pytest

from tests.support import ENCODED_PASSWORD, PASSWORD, invoke, leaks, require
from totesys_cli.config.settings import parse_settings
from totesys_cli.config.urls import parse_database_url
from totesys_cli.db.connect import _ssl_context
from totesys_cli.errors import ConfigError
from totesys_cli.runtime.endpoints import ALL, Endpoints, open_endpoints


def opened(**values: str) -> Endpoints:
    return open_endpoints(parse_settings(**values), optional=ALL)


def test_plain_postgresql_url_means_pg8000():
    url = parse_database_url("source", "postgresql://u:p@db.example:5433/totesys", "X")
    assert url.drivername == "postgresql+pg8000"
    assert (url.host, url.port, url.database) == ("db.example", 5433, "totesys")


def test_ssl_modes_map_to_pg8000_contexts():
    def context(query: str):
        return _ssl_context(opened(source_url=f"postgresql://u@h/db{query}").source)

    assert context("") is None
    assert context("?sslmode=require") is True
    assert context("?sslmode=disable") is False
    full = context("?sslmode=verify-full")
    assert isinstance(full, ssl.SSLContext)
    assert full.check_hostname and full.verify_mode == ssl.CERT_REQUIRED
    assert context("?unix_sock=/tmp/.s.PGSQL.5432") is False


def test_a_database_never_shows_its_password():
    db = opened(warehouse_url=f"postgresql://u:{ENCODED_PASSWORD}@h:5432/dw").warehouse
    assert not leaks(repr(db))
    assert db.where == "h:5432/dw"


def test_one_lake_url_holds_both_zones_unless_split():
    assert parse_settings(lake_url="s3://bucket/lake/").raw_url == "s3://bucket/lake/raw"
    split = parse_settings(lake_url="/tmp/lake", raw_url="s3://in", processed_url="s3://out")
    assert (split.raw_url, split.processed_url) == ("s3://in", "s3://out")


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ({"max_runtime": 0}, "TOTESYS_MAX_RUNTIME (--max-runtime): 0 is not in the range x>=1"),
        ({"batch_rows": 99}, "(--batch-rows): 99 is not in the range x>=100"),
        ({"batch_rows": 2.5}, "(--batch-rows): 2.5 is not an integer"),
        ({"mass_delete_percent": 101}, "101 is not in the range 0<=x<=100"),
        ({"log_format": "xml"}, "'xml' is not one of 'text', 'json'"),
        ({"earliest_date": "2020-13-01"}, "'2020-13-01' is not a date (YYYY-MM-DD)"),
        ({"earliest_date": "2200-01-01"}, "is not before the latest 2100-12-31"),
        ({"source_url": "mysql://u@h/db"}, "the source URL must be a PostgreSQL URL"),
    ],
)
def test_a_library_caller_gets_the_checks_the_options_make(given, said):
    """One declaration per setting: whoever makes the settings (the CLI, a profile, a
    library caller) gets the same checks, naming the variable and the option."""
    with pytest.raises(ConfigError) as refused:
        parse_settings(**given)
    assert said in refused.value.message


def test_values_are_typed_as_declared_whoever_gives_them():
    given = parse_settings(max_runtime="60", batch_rows="500", earliest_date="2000-01-01")
    assert (given.max_runtime, given.batch_rows) == (60.0, 500)
    assert given.bounds.earliest.isoformat() == "2000-01-01"
    assert parse_settings(log_level="debug").log_level == "DEBUG"
    defaults = parse_settings()
    assert (defaults.max_runtime, defaults.overlap, defaults.bounds.skew.seconds) == (540, 15, 300)


def _secret(name: str, value: dict) -> str:
    client = boto3.client("secretsmanager")
    return client.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]


def test_secret_in_rds_spelling(aws):
    arn = _secret(
        "rds",
        {
            "username": "admin",
            "password": PASSWORD,
            "host": "db.internal",
            "port": 5433,
            "dbname": "warehouse",
            "engine": "postgres",
        },
    )
    db = opened(warehouse_secret=arn).warehouse
    assert (db.url.username, db.url.password, db.url.host, db.url.port, db.url.database) == (
        "admin",
        PASSWORD,
        "db.internal",
        5433,
        "warehouse",
    )
    assert db.envvar == "TOTESYS_WAREHOUSE_SECRET"


def test_secret_in_our_spelling_by_name(aws):
    _secret(
        "totesys/source",
        {
            "user": "reader",
            "password": "x" * 8,
            "host": "src",
            "database": "totesys",
            "sslmode": "require",
        },
    )
    db = opened(source_secret="totesys/source").source
    assert (db.url.username, db.url.port, db.url.database, db.sslmode) == (
        "reader",
        5432,
        "totesys",
        "require",
    )


def test_a_url_with_its_password_wins_over_the_secret(aws):
    db = opened(source_url="postgresql://u:pw@h/a", source_secret="never-read").source
    assert (db.url.database, db.url.password, db.envvar) == ("a", "pw", "TOTESYS_SOURCE_URL")


def test_an_rds_master_user_secret_takes_its_address_from_the_url(aws):
    """RDS keeps only username and password in the secret it manages for a master user:
    the URL, without a password, gives the host, port, database and options."""
    arn = _secret("rds!db-0123", {"username": "postgres", "password": PASSWORD})
    db = opened(
        warehouse_url="postgresql://dw.internal:5433/warehouse?sslmode=verify-full",
        warehouse_secret=arn,
    ).warehouse
    assert (db.url.username, db.url.password, db.url.host, db.url.port, db.url.database) == (
        "postgres",
        PASSWORD,
        "dw.internal",
        5433,
        "warehouse",
    )
    assert db.sslmode == "verify-full" and db.envvar == "TOTESYS_WAREHOUSE_SECRET"


@pytest.mark.parametrize("url", [None, "postgresql://dw.internal/warehouse"])
def test_a_null_password_in_a_secret_is_no_password(aws, url):
    shape = {"host": "dw.internal", "dbname": "warehouse"} if url is None else {}
    arn = _secret("trusting", {"username": "postgres", "password": None, **shape})
    db = opened(warehouse_url=url, warehouse_secret=arn).warehouse
    assert db.url.password is None and db.url.username == "postgres"


def test_a_credentials_only_secret_without_a_url_says_what_to_set(aws):
    arn = _secret("rds!db-0456", {"username": "postgres", "password": PASSWORD})
    with pytest.raises(ConfigError) as caught:
        opened(warehouse_secret=arn)
    assert caught.value.message.startswith(
        f"the warehouse secret {arn!r} holds credentials but no host and database (or "
        "dbname). Set TOTESYS_WAREHOUSE_URL to the address without a password"
    )
    assert not leaks(caught.value.message)


def test_missing_secret_is_a_configuration_error(aws):
    with pytest.raises(ConfigError) as caught:
        opened(warehouse_secret="nope")
    assert caught.value.message == (
        "cannot read the warehouse secret 'nope' from Secrets Manager: "
        "ResourceNotFoundException. Check TOTESYS_WAREHOUSE_SECRET and that this role may "
        "call secretsmanager:GetSecretValue"
    )


def test_secret_in_the_wrong_shape_is_a_configuration_error(aws):
    _secret("bad", {"host": "h", "password": PASSWORD})
    with pytest.raises(ConfigError) as caught:
        opened(warehouse_secret="bad")
    assert "is not a JSON object with user (or username) and password" in caught.value.message
    assert not leaks(caught.value.message)


def test_init_through_a_secret_on_a_unix_socket(aws, pg, empty_db):
    """A secret whose host is a socket folder reaches a local server, as libpq's would."""
    sock = parse_database_url("w", pg.url(empty_db), "X").query.get("unix_sock")
    require(bool(sock), "the test server is not on a unix socket")
    folder, _, name = sock.rpartition("/")
    arn = _secret(
        "dw",
        {
            "username": "postgres",
            "password": PASSWORD,
            "host": folder,
            "port": int(name.rsplit(".", 1)[1]),
            "dbname": empty_db,
        },
    )
    result = invoke("init", env={"TOTESYS_WAREHOUSE_SECRET": arn, "TOTESYS_WAREHOUSE_URL": None})
    assert result.exit_code == 0, result.output
    assert result.stdout == "warehouse initialised: created 32 objects\n"
    assert not leaks(result.output)
