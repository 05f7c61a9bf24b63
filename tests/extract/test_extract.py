"""Extract: every changed row, exactly, from one snapshot, committed by its manifest."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, text

from tests.support import (
    ENCODED_PASSWORD,
    PASSWORD,
    database_name,
    index_last_updated,
    invoke,
    leaks,
    totesys,
)
from totesys_cli.config.settings import parse_settings
from totesys_cli.demo.activity import simulate_activity
from totesys_cli.errors import RuntimeFailure
from totesys_cli.extract import ExtractOptions, extract
from totesys_cli.extract import run as extract_run
from totesys_cli.lake import Lake, open_lake
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.files import read_parquet
from totesys_cli.lake.manifest import RawManifest
from totesys_cli.observe import logs
from totesys_cli.runtime import Deadline
from totesys_cli.runtime.endpoints import SOURCE, open_endpoints
from totesys_cli.schemas import SOURCE_TABLES, source_table
from totesys_cli.schemas.arrow import arrow_schema

_db = database_name


def _source(url: str):
    return open_endpoints(parse_settings(source_url=url), (SOURCE,)).source


def _manifest(raw: Lake, seq: int) -> RawManifest:
    return manifests.read(raw, manifests.manifest_key(seq), RawManifest)


def _run_rows(raw: Lake, seq: int, table: str) -> list[dict]:
    schema = arrow_schema(source_table(table))
    return read_parquet(raw, _manifest(raw, seq).files(table), schema).to_pylist()


def _source_rows(pg, url: str, table: str, where=None) -> list[dict]:
    t = source_table(table)
    query = select(t) if where is None else select(t).where(where(t))
    with pg.engine(_db(url)).connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def _key(table: str):
    name = source_table(table).primary_key.columns[0].name
    return lambda row: (row[name], row["last_updated"])


def _extract(url, lake_dir, **options):
    raw = open_lake(str(lake_dir), "TEST")
    return extract(_source(url), raw, ExtractOptions(**options), Deadline(None)), raw


def test_full_extract_holds_every_row_with_identical_values(pg, source_url, tmp_path):
    result, raw = _extract(source_url, tmp_path)
    assert result.seq == 1
    for table in SOURCE_TABLES:
        expected = sorted(_source_rows(pg, source_url, table), key=_key(table))
        actual = sorted(_run_rows(raw, 1, table), key=_key(table))
        assert actual == expected, table
        assert result.tables[table].rows == len(expected)
    payments = _run_rows(raw, 1, "payment")
    assert str(payments[0]["payment_amount"]).count(".") == 1  # decimals, not floats
    transactions = _run_rows(raw, 1, "transaction")
    assert any(t["sales_order_id"] is None for t in transactions)
    assert all(isinstance(t["purchase_order_id"], int | None) for t in transactions)


def test_every_raw_file_is_written_with_the_declared_types(source_url, tmp_path):
    """Each file's own Parquet schema, not a cast of it: decimals stay decimals,
    timestamps keep milliseconds, nullable integers stay integers, in every table."""
    import pyarrow.parquet as pq

    result, _ = _extract(source_url, tmp_path, batch_rows=100)
    for table in SOURCE_TABLES:
        declared = arrow_schema(source_table(table))
        files = result.tables[table].files
        assert files, table
        for file in files:
            assert file.key.startswith(f"{table}/extracted_date=")
            written = pq.read_schema(tmp_path / file.key)
            assert [(f.name, f.type, f.nullable) for f in written] == [
                (f.name, f.type, f.nullable) for f in declared
            ], file.key
    sales = arrow_schema(source_table("sales_order"))  # the declaration itself, spelled out
    assert str(sales.field("unit_price").type) == "decimal128(10, 2)"
    assert str(sales.field("created_at").type) == "timestamp[ms]"
    assert str(sales.field("agreed_delivery_date").type) == "string"


def test_manifest_records_snapshot_bounds_and_watermarks(pg, source_url, tmp_path):
    result, _raw = _extract(source_url, tmp_path)
    manifest = json.loads((tmp_path / "_manifests" / "0000000001.json").read_text())
    assert manifest["format"] == manifests.RawManifest.FORMAT == 2
    assert manifest["seq"] == 1 and manifest["kind"] == "raw"
    assert manifest["snapshot_time"] == result.snapshot.isoformat(sep=" ")
    with pg.engine(_db(source_url)).connect() as conn:
        newest = conn.execute(text("SELECT max(last_updated) FROM payment")).scalar_one()
        oldest = conn.execute(text("SELECT min(last_updated) FROM payment")).scalar_one()
    entry = manifest["tables"]["payment"]
    assert entry["max_last_updated"] == newest.isoformat(sep=" ")
    assert entry["min_last_updated"] == oldest.isoformat(sep=" ")
    assert manifest["state"]["payment"]["watermark"] == newest.isoformat(sep=" ")
    assert sum(f["rows"] for f in entry["files"]) == entry["rows"]


def test_quiet_source_reads_nothing_the_second_time(source_url, tmp_path):
    _extract(source_url, tmp_path)
    second, _ = _extract(source_url, tmp_path)
    assert second.seq == 2
    assert second.rows == 0
    assert all(not t.files for t in second.tables.values())


def test_next_extract_holds_exactly_the_new_and_updated_versions(pg, source_url, tmp_path):
    _extract(source_url, tmp_path)
    with pg.engine(_db(source_url)).begin() as conn:
        activity = simulate_activity(conn, seed=3, step=1)
    second, raw = _extract(source_url, tmp_path)
    for table in SOURCE_TABLES:
        changed = _source_rows(pg, source_url, table, lambda t: t.c.last_updated == activity.at)
        got = _run_rows(raw, 2, table)
        assert sorted(got, key=_key(table)) == sorted(changed, key=_key(table)), table
    assert second.tables["sales_order"].rows == 20
    assert second.tables["department"].rows == 1


def test_a_row_committed_late_is_caught_by_the_overlap(pg, source_url, tmp_path):
    engine = pg.engine(_db(source_url))
    _extract(source_url, tmp_path)
    late = engine.connect()
    try:
        late.execute(
            text(
                "UPDATE department SET manager = 'Late O''Brien', last_updated = "
                "(now() AT TIME ZONE 'UTC')::timestamp(3) WHERE department_id = 1"
            )
        )
        with engine.begin() as conn:  # a newer row commits first and is read
            conn.execute(
                text(
                    "UPDATE department SET manager = 'Early', last_updated = "
                    "(clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3) "
                    "WHERE department_id = 2"
                )
            )
        _second, raw = _extract(source_url, tmp_path)
        assert [r["department_id"] for r in _run_rows(raw, 2, "department")] == [2]
        late.commit()
    finally:
        late.close()
    _third, raw = _extract(source_url, tmp_path)
    managers = {r["department_id"]: r["manager"] for r in _run_rows(raw, 3, "department")}
    assert managers[1] == "Late O'Brien"


_LATE_WRITES = {
    "updated": (
        "UPDATE department SET manager = 'Late', last_updated = "
        "(now() AT TIME ZONE 'UTC')::timestamp(3) WHERE department_id = 1 "
        "RETURNING department_id"
    ),
    "inserted": (
        "INSERT INTO department (department_name, location, manager, created_at, "
        "last_updated) VALUES ('Late', 'Leeds', 'Late', (now() AT TIME ZONE 'UTC')::timestamp(3), "
        "(now() AT TIME ZONE 'UTC')::timestamp(3)) RETURNING department_id"
    ),
}


def _extracted_once(pg, source_url, tmp_path, indexed: bool):
    """The source's engine after a first extract with overlap 0 (`indexed`: the source
    has an index on last_updated, so runs read by it unless the late rule is needed)."""
    if indexed:
        index_last_updated(pg, source_url)
    _extract(source_url, tmp_path, overlap=dt.timedelta(0))
    return pg.engine(_db(source_url))


def _late_commit(pg, source_url, tmp_path, how: str, indexed: bool) -> tuple[int, Lake]:
    """A transaction writes a row with last_updated = now() and stays open across two
    extracts with overlap 0 (a newer row commits and is read meanwhile), then commits:
    the id it wrote, and the raw zone after a third extract."""
    engine = _extracted_once(pg, source_url, tmp_path, indexed)
    no_overlap = {"overlap": dt.timedelta(0)}
    late = engine.connect()
    try:
        if how == "in a savepoint":  # a top-level write, then one in a subtransaction
            late.execute(text("UPDATE department SET manager = 'Top' WHERE department_id = 3"))
            late.execute(text("SAVEPOINT inner_write"))
            written = late.execute(text(_LATE_WRITES["inserted"])).scalar_one()
            late.execute(text("RELEASE SAVEPOINT inner_write"))
        else:
            written = late.execute(text(_LATE_WRITES[how])).scalar_one()
        for run in (2, 3):
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "UPDATE department SET manager = :who, last_updated = "
                        "(clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3) "
                        "WHERE department_id = 2"
                    ),
                    {"who": f"Early {run}"},
                )
            _, raw = _extract(source_url, tmp_path, **no_overlap)
            assert [r["department_id"] for r in _run_rows(raw, run, "department")] == [2]
        late.commit()
    finally:
        late.close()
    _extract(source_url, tmp_path, **no_overlap)
    return written, raw


_INDEXED = pytest.mark.parametrize("indexed", [False, True], ids=["unindexed", "indexed"])


@_INDEXED
@pytest.mark.parametrize("how", ["updated", "inserted"])
def test_a_row_committed_late_is_caught_whatever_the_overlap(
    pg, source_url, tmp_path, how, indexed
):
    """Its last_updated is older than the window of every run after it commits: the
    snapshot each extract records is what catches it."""
    written, raw = _late_commit(pg, source_url, tmp_path, how, indexed)
    rows = _run_rows(raw, 4, "department")
    assert [(r["department_id"], r["manager"]) for r in rows] == [(written, "Late")]
    assert rows[0]["last_updated"] < _manifest(raw, 3).snapshot_time
    assert _manifest(raw, 3).state["department"].xids.count(":") == 2
    _extract(source_url, tmp_path, overlap=dt.timedelta(0))
    assert _run_rows(raw, 5, "department") == []  # read once, not again


@_INDEXED
def test_a_row_written_in_a_savepoint_of_a_late_transaction_is_caught(
    pg, source_url, tmp_path, indexed
):
    """pg_current_snapshot() lists top-level transactions only: the subtransaction's
    row must be caught as surely as the top-level row of the same transaction."""
    written, raw = _late_commit(pg, source_url, tmp_path, "in a savepoint", indexed)
    rows = _run_rows(raw, 4, "department")
    assert sorted((r["department_id"], r["manager"]) for r in rows) == [
        (3, "Top"),
        (written, "Late"),
    ]
    _extract(source_url, tmp_path, overlap=dt.timedelta(0))
    assert _run_rows(raw, 5, "department") == []


@_INDEXED
def test_a_late_transaction_newer_than_every_one_completed_is_caught(
    pg, source_url, tmp_path, indexed
):
    """pg_current_snapshot() does not list a transaction in progress whose id is past
    the newest one completed: it must count among those in progress all the same. Its
    row is older than a row committed before it wrote (its now() is its start), and it
    is the newest transaction when the second extract takes its snapshot."""
    engine = _extracted_once(pg, source_url, tmp_path, indexed)
    no_overlap = {"overlap": dt.timedelta(0)}
    late = engine.connect()
    try:
        late.execute(text("SELECT 1"))  # its now() is fixed here
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE department SET manager = 'Early', last_updated = "
                    "(clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3) "
                    "WHERE department_id = 2"
                )
            )
        late.execute(text(_LATE_WRITES["updated"]))  # its id comes after every completed one
        _, raw = _extract(source_url, tmp_path, **no_overlap)
        assert [r["department_id"] for r in _run_rows(raw, 2, "department")] == [2]
        late.commit()
    finally:
        late.close()
    _extract(source_url, tmp_path, **no_overlap)
    rows = _run_rows(raw, 3, "department")
    assert [(r["department_id"], r["manager"]) for r in rows] == [(1, "Late")]


def test_when_the_transaction_counter_went_backwards_it_falls_back_with_a_warning(
    pg, source_url, tmp_path, caplog
):
    """A restore or a failover to another cluster: the recorded snapshot is ahead of the
    source's counter. The window is then by last_updated alone, as the WARNING says, and
    (overlap 0) a row committed late is missed, as it was before snapshots were recorded."""
    engine = pg.engine(_db(source_url))
    no_overlap = {"overlap": dt.timedelta(0)}
    _extract(source_url, tmp_path, **no_overlap)
    late = engine.connect()
    try:
        late.execute(text(_LATE_WRITES["updated"]))
        with engine.begin() as conn:  # newer, committed first: the watermark passes the late row
            conn.execute(
                text(
                    "UPDATE department SET manager = 'Early', last_updated = "
                    "(clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3) "
                    "WHERE department_id = 2"
                )
            )
        _, raw = _extract(source_url, tmp_path, **no_overlap)
        late.commit()
    finally:
        late.close()
    (written,) = tmp_path.rglob("0000000002.json")  # as a cluster with a later counter wrote it
    body = json.loads(written.read_text())
    for state in body["state"].values():
        state["xids"] = state["swept_xids"] = "4000000000:4000000001:"
    written.write_text(json.dumps(body))
    with caplog.at_level("WARNING", logger="totesys_cli"):
        _extract(source_url, tmp_path, **no_overlap)
    assert _run_rows(raw, 3, "department") == []
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(
        "the source's transaction counter went backwards since the last extract of department" in m
        for m in warned
    ), warned


def test_large_tables_are_written_in_bounded_chunks(pg, source_url, tmp_path):
    result, raw = _extract(source_url, tmp_path, batch_rows=100)
    payment = result.tables["payment"]
    assert len(payment.files) >= 4
    assert all(f.rows == 100 for f in payment.files[:-1]) and payment.files[-1].rows <= 100
    rows = _run_rows(raw, 1, "payment")
    assert len(rows) == len({r["payment_id"] for r in rows}) == payment.rows
    with pg.engine(_db(source_url)).begin() as conn:
        simulate_activity(conn, seed=3, step=1, payments_paid=0)
    second, _ = _extract(source_url, tmp_path, batch_rows=100)
    assert second.tables["payment"].rows == 27  # few rows, one file
    assert len(second.tables["payment"].files) == 1
    since = dt.datetime(2000, 1, 1)  # a filtered read of many rows is cut as it streams
    third, raw = _extract(source_url, tmp_path, batch_rows=100, since=since)
    chunks = third.tables["payment"].files
    assert len(chunks) >= 4 and all(f.rows <= 100 for f in chunks)
    rows = _run_rows(raw, 3, "payment")
    assert sorted(rows, key=_key("payment")) == sorted(
        _source_rows(pg, source_url, "payment"), key=_key("payment")
    )


def test_a_run_that_fails_half_way_commits_nothing(pg, source_url, tmp_path, monkeypatch):
    real_copy = extract_run.copy_out
    seen = []

    def dropping_copy(conn, sql, rows):
        seen.append(sql)
        if len(seen) == 5:  # the source connection drops in the middle of the run
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with pg.admin().connect() as admin:
                admin.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
        return real_copy(conn, sql, rows)

    monkeypatch.setattr(extract_run, "copy_out", dropping_copy)
    raw = open_lake(str(tmp_path), "TEST")
    with pytest.raises(RuntimeFailure, match="the source"):
        extract(_source(source_url), raw, ExtractOptions(), Deadline(None))
    assert manifests.latest(raw, RawManifest) is None
    assert not list(tmp_path.rglob("*.parquet"))  # a failed run removes what it wrote
    monkeypatch.setattr(extract_run, "copy_out", real_copy)
    result, _ = _extract(source_url, tmp_path)
    assert result.seq == 1
    assert result.tables["payment"].rows == len(_source_rows(pg, source_url, "payment"))


def test_a_deadline_between_chunks_stops_the_copy_and_commits_nothing(pg, source_url, tmp_path):
    class Expiring(Deadline):
        def check(self, doing: str) -> None:
            if doing == "extracting payment":  # after the first chunk, mid-COPY
                self.seconds = 0.0
            super().check(doing)

    raw = open_lake(str(tmp_path), "TEST")
    with pytest.raises(RuntimeFailure, match="passed its --max-runtime of 0 s while extracting"):
        extract(_source(source_url), raw, ExtractOptions(batch_rows=100), Expiring(3600.0))
    assert manifests.latest(raw, RawManifest) is None
    assert not list(tmp_path.rglob("*.parquet"))
    result, _ = _extract(source_url, tmp_path)
    assert result.tables["payment"].rows == len(_source_rows(pg, source_url, "payment"))


@pytest.mark.parametrize("where", ["local", "s3"])
def test_two_extracts_racing_for_one_slot_commit_once(
    source_url, tmp_path, where, request, monkeypatch
):
    if where == "s3":
        request.getfixturevalue("aws")
        import boto3

        boto3.client("s3").create_bucket(
            Bucket="lake", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
        )
        url = "s3://lake/raw"
    else:
        url = str(tmp_path)
    raw = open_lake(url, "TEST")
    first = extract(_source(source_url), raw, ExtractOptions(), Deadline(None))
    # the loser, another process, read the same state before the winner committed
    monkeypatch.setattr(manifests, "latest", lambda zone, kind: None)
    logs.set_run_id("loser")
    with pytest.raises(RuntimeFailure, match="another extract committed run 1 first"):
        extract(_source(source_url), raw, ExtractOptions(), Deadline(None))
    monkeypatch.undo()
    manifest = manifests.latest(raw, RawManifest)
    assert manifest.seq == 1
    assert manifest.tables["payment"].rows == first.tables["payment"].rows
    files = [o.key for o in raw.list("") if o.key.endswith(".parquet")]
    assert len(files) == sum(len(t.files) for t in first.tables.values())  # loser cleaned


def test_since_rereads_a_window_without_moving_watermarks_back(pg, source_url, tmp_path):
    _first, raw = _extract(source_url, tmp_path)
    since = dt.datetime(2026, 10, 1)
    _second, _ = _extract(source_url, tmp_path, since=since)
    expected = _source_rows(pg, source_url, "sales_order", lambda t: t.c.last_updated >= since)
    assert len(expected) > 0
    assert sorted(_run_rows(raw, 2, "sales_order"), key=_key("sales_order")) == sorted(
        expected, key=_key("sales_order")
    )
    one, two = _manifest(raw, 1).state, _manifest(raw, 2).state
    assert {t: s.watermark for t, s in one.items()} == {t: s.watermark for t, s in two.items()}
    third, _ = _extract(source_url, tmp_path)
    assert third.rows == 0


def test_table_option_extracts_only_those_and_keeps_the_others_state(source_url, tmp_path):
    first, raw = _extract(source_url, tmp_path, tables=("sales_order",))
    assert list(first.tables) == ["sales_order"]
    assert set(_manifest(raw, 1).state) == {"sales_order"}
    second, _ = _extract(source_url, tmp_path)
    assert second.tables["sales_order"].rows == 0
    assert second.tables["payment"].rows > 0


# ---------------------------------------------------------------- through the CLI


def _manifests(folder) -> list[str]:
    path = folder / "raw" / "_manifests"
    return sorted(p.name for p in path.glob("*.json")) if path.exists() else []


def test_cli_extract_prints_a_summary(source_url, tmp_path):
    result = invoke("extract", "--source-url", source_url, "--lake-url", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0].split() == ["table", "rows", "bytes", "seconds"]
    assert result.stdout.splitlines()[-1].startswith("extract run 1 committed: ")
    assert "so this extract takes no lock: a concurrent run is kept apart" in result.stderr
    assert _manifests(tmp_path) == ["0000000001.json"]


def test_cli_unknown_table_exits_2(source_url, tmp_path):
    result = invoke(
        "extract", "--source-url", source_url, "--lake-url", str(tmp_path), "--table", "orders"
    )
    assert result.exit_code == 2
    assert "'orders' is not one of 'address'" in result.stderr
    assert not tmp_path.joinpath("raw").exists()


@pytest.mark.parametrize(
    ("since", "message"),
    [
        ("yesterday", "--since 'yesterday' is not a date or timestamp"),
        ("2999-01-01", "--since '2999-01-01' is in the future"),
    ],
)
def test_cli_bad_since_exits_2(source_url, tmp_path, since, message):
    result = invoke(
        "extract", "--source-url", source_url, "--lake-url", str(tmp_path), "--since", since
    )
    assert result.exit_code == 2
    assert message in result.stderr
    assert _manifests(tmp_path) == []


def test_cli_source_missing_a_column_fails_before_writing(pg, source_url, tmp_path):
    with pg.engine(_db(source_url)).begin() as conn:
        conn.execute(text("ALTER TABLE sales_order DROP COLUMN units_sold"))
        conn.execute(text("ALTER TABLE staff ADD COLUMN nickname text"))
    result = invoke("extract", "--source-url", source_url, "--lake-url", str(tmp_path))
    assert result.exit_code == 1
    assert (
        "[extract] the source table sales_order has no column units_sold; nothing was "
        "extracted. Check that TOTESYS_SOURCE_URL points at the totesys database" in (result.stderr)
    )
    assert "the source table staff has columns totesys does not read: nickname" in result.stderr
    assert _manifests(tmp_path) == []
    assert not list((tmp_path / "raw").rglob("*.parquet"))


def test_cli_unreachable_source_exits_1(tmp_path):
    result = invoke(
        "extract",
        "--source-url",
        f"postgresql://u:{ENCODED_PASSWORD}@127.0.0.1:9/totesys",
        "--lake-url",
        str(tmp_path),
    )
    assert result.exit_code == 1
    assert "[extract] cannot reach the source database at 127.0.0.1:9/totesys" in result.stderr
    assert not leaks(result.output)
    assert _manifests(tmp_path) == []


def test_cli_wrong_source_password_exits_2(pg, source_url, tmp_path, password_role):
    user, _ = password_role
    url = pg.url(_db(source_url), user=user, password="nope-" + PASSWORD)
    result = invoke("extract", "--source-url", url, "--lake-url", str(tmp_path))
    assert result.exit_code == 2
    assert "wrong user or password" in result.stderr
    assert not leaks(result.output)


def test_cli_missing_bucket_exits_2(aws, source_url):
    result = invoke("extract", "--source-url", source_url, "--lake-url", "s3://no-such-bucket/x")
    assert result.exit_code == 2
    assert "the lake bucket no-such-bucket does not exist (NoSuchBucket)" in result.stderr


def test_cli_extract_to_s3(aws, pg, source_url):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="ingest", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    result = invoke("extract", "--source-url", source_url, "--raw-url", "s3://ingest/totesys")
    assert result.exit_code == 0, result.output
    raw = open_lake("s3://ingest/totesys", "TEST")
    assert sorted(_run_rows(raw, 1, "staff"), key=_key("staff")) == sorted(
        _source_rows(pg, source_url, "staff"), key=_key("staff")
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="ingest")["Contents"]]
    assert "totesys/_manifests/0000000001.json" in keys


def test_cli_second_extract_exits_75_while_the_lock_is_held(
    pg, source_url, warehouse_url, tmp_path
):
    from totesys_cli.runtime import LOCK_KEY

    args = ("--source-url", source_url, "--warehouse-url", warehouse_url, "--lake-url")
    with pg.engine(_db(warehouse_url)).connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        result = invoke("extract", *args, str(tmp_path))
    assert result.exit_code == 75
    line = result.stderr.strip().splitlines()[-1]
    assert "WARNING [extract] another totesys run holds the warehouse lock" in line
    assert _manifests(tmp_path) == []
    again = invoke("extract", *args, str(tmp_path))
    assert again.exit_code == 0, again.output


def test_installed_extract_reaches_s3_through_aws_endpoint_url(moto_endpoint, source_url):
    import boto3

    boto3.client("s3").create_bucket(
        Bucket="ingest", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
    )
    run = totesys(
        "--log-format",
        "json",
        "extract",
        "--source-url",
        source_url,
        "--lake-url",
        "s3://ingest/lake",
    )
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stderr.splitlines()]
    assert {line["step"] for line in lines} == {"extract"}
    per_table = [line for line in lines if line.get("table")]
    assert len(per_table) == 11 and all("rows" in line and "bytes" in line for line in per_table)
    assert lines[-1]["message"] == "extract run 1 committed"
    raw = open_lake("s3://ingest/lake/raw", "TEST")
    assert manifests.latest(raw, RawManifest).seq == 1


def _source_keys(pg, url: str, table: str) -> list[tuple]:
    return sorted(_key(table)(r) for r in _source_rows(pg, url, table))


def test_a_window_bigger_than_the_budget_is_read_over_runs_in_key_ranges(pg, source_url, tmp_path):
    """With its budget spent (0 s), a run reads one range of keys and commits it; the next
    goes on above the last key. A row changed behind the pass is read again once it ends,
    a row ahead of it in its new version; every table's watermark waits for its pass."""
    ranged = {"budget": 0, "range_rows": 100}
    results = []
    while not results or results[-1].left:
        result, raw = _extract(source_url, tmp_path, **ranged)
        assert result.rows > 0  # every run commits progress
        results.append(result)
        if len(results) > 60:
            raise AssertionError("the pass does not end")
    assert len(results) > 10
    middle = next(r for r in results if (s := r.manifest.state.get("sales_order")) and s.passing)
    pass_ = middle.manifest.state["sales_order"].passing
    assert pass_.after % 100 == 0 and pass_.first == 1 and pass_.last == 300
    assert middle.manifest.state["sales_order"].watermark is None
    for table in SOURCE_TABLES:
        read = sorted(_key(table)(row) for r in results for row in _run_rows(raw, r.seq, table))
        assert read == _source_keys(pg, source_url, table), table
    states = [r.manifest.state.get("sales_order") for r in results]
    passing = [s.passing if s else None for s in states]
    began = next(r for r, p in zip(results, passing, strict=True) if p)
    ended = next(
        r for r, p in zip(results, passing, strict=True) if r.seq > began.seq and p is None
    )
    assert ended.manifest.state["sales_order"].snapshot == began.snapshot  # S0


def test_a_run_with_room_reads_every_range_of_its_window_to_the_end(pg, source_url, tmp_path):
    """With time left, one run goes on from range to range until each window is read:
    the last range (a part of range_rows) included, nothing read twice."""
    result, raw = _extract(source_url, tmp_path, budget=600, range_rows=70)
    assert result.left == []
    assert result.manifest.tables["sales_order"].files  # 300 keys: five ranges, one run
    for table in SOURCE_TABLES:
        read = sorted(_key(table)(row) for row in _run_rows(raw, result.seq, table))
        assert read == _source_keys(pg, source_url, table), table


def test_rows_changed_during_a_pass_are_read_in_their_newest_version(pg, source_url, tmp_path):
    ranged = {"budget": 0, "range_rows": 100, "tables": ("sales_order",)}
    _extract(source_url, tmp_path, **ranged)  # keys 1-100
    engine = pg.engine(_db(source_url))
    with engine.begin() as conn:  # one behind the pass, one ahead of it
        conn.execute(
            text(
                "UPDATE sales_order SET units_sold = units_sold + 1, last_updated = "
                "(clock_timestamp() AT TIME ZONE 'UTC')::timestamp(3) "
                "WHERE sales_order_id IN (50, 250)"
            )
        )
    seqs = []
    for _ in range(10):  # 300 keys in ranges of 100: three runs
        result, raw = _extract(source_url, tmp_path, **ranged)
        seqs.append(result.seq)
        if not result.left:
            break
    else:
        pytest.fail(f"the pass never ended: {result.left} left after {len(seqs)} runs")
    result, raw = _extract(source_url, tmp_path, **ranged)  # the next window, after the pass
    rows = {
        (r["sales_order_id"], r["units_sold"])
        for seq in [1, *seqs, result.seq]
        for r in _run_rows(raw, seq, "sales_order")
    }
    current = {
        (r["sales_order_id"], r["units_sold"])
        for r in _source_rows(
            pg, source_url, "sales_order", lambda t: t.c.sales_order_id.in_([50, 250])
        )
    }
    assert current <= rows
    # behind the pass: read by the window after it (from S0 of the pass, with the overlap)
    after = {
        (r["sales_order_id"], r["units_sold"]) for r in _run_rows(raw, result.seq, "sales_order")
    }
    assert {row for row in current if row[0] == 50} <= after
