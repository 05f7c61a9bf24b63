"""Bad rows are set aside, never block the pipeline, never enter silently.

Each kind of bad value, made in the source as a user or a migration would make it: the
run that meets it exits 0 with every other row of the run loaded; the bad version is in
its zone's quarantine and in the warehouse's; status, `totesys quarantine` and verify
name it; and once the source row is fixed, the next run resolves it and the warehouse
is the independent expectation again.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from tests import expected
from tests.support import Pipeline, invoke
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.files import read_parquet
from totesys_cli.lake.manifest import ProcessedManifest, RawManifest
from totesys_cli.ops.status import SHOWN
from totesys_cli.schemas import STAR_TABLES, latest_view_name, star

NOW = "(now() AT TIME ZONE 'UTC')::timestamp(3)"


@dataclass(frozen=True)
class Kind:
    name: str
    table: str  # the source table of the bad version
    key: int
    column: str
    kind: str
    zone: str  # where it is found: the extract ("raw") or the transform ("processed")
    value: str | None  # the value as the entry shows it
    breaks: tuple[str, ...]  # SQL on the source
    fixes: tuple[str, ...]


def _set(table: str, key: int, assignment: str, when: str = NOW) -> str:
    return f'UPDATE "{table}" SET {assignment}, last_updated = {when} WHERE {table}_id = {key}'


KINDS = [
    Kind(
        "a date that is not on the calendar",
        "sales_order", 7, "agreed_delivery_date", "not_a_date", "processed", "2026-13-45",
        (_set("sales_order", 7, "agreed_delivery_date = '2026-13-45'"),),
        (_set("sales_order", 7, "agreed_delivery_date = '2026-12-25'"),),
    ),
    Kind(
        "a date without its dashes",
        "purchase_order", 3, "agreed_payment_date", "not_a_date", "processed", "20261205",
        (_set("purchase_order", 3, "agreed_payment_date = '20261205'"),),
        (_set("purchase_order", 3, "agreed_payment_date = '2026-12-05'"),),
    ),
    Kind(
        "a date written the British way",
        "payment", 11, "payment_date", "not_a_date", "processed", "05/12/2026",
        (_set("payment", 11, "payment_date = '05/12/2026'"),),
        (_set("payment", 11, "payment_date = '2026-12-05'"),),
    ),
    Kind(
        "a date a thousand years ahead",
        "sales_order", 8, "agreed_delivery_date", "implausible", "processed", "2999-12-31",
        (_set("sales_order", 8, "agreed_delivery_date = '2999-12-31'"),),
        (_set("sales_order", 8, "agreed_delivery_date = '2027-12-31'"),),
    ),
    Kind(
        "a timestamp from before the business",
        "sales_order", 9, "created_at", "implausible", "raw", "1850-01-01 00:00:00.000",
        (_set("sales_order", 9, "created_at = '1850-01-01'"),),
        (_set("sales_order", 9, "created_at = '2025-01-01'"),),
    ),
    Kind(
        "a design renamed with last_updated in 2099",
        "design", 5, "last_updated", "in_the_future", "raw", "2099-01-01 00:00:00.000",
        (_set("design", 5, "design_name = 'Wrong'", "'2099-01-01'"),),
        (_set("design", 5, "design_name = 'Right'"),),
    ),
    Kind(
        "a sales order amended with last_updated in 2099",
        "sales_order", 10, "last_updated", "in_the_future", "raw", "2099-01-01 00:00:00.000",
        (_set("sales_order", 10, "units_sold = 1", "'2099-01-01'"),),
        (_set("sales_order", 10, "units_sold = 2"),),
    ),
    Kind(
        "last_updated of infinity",
        "staff", 3, "last_updated", "in_the_future", "raw", "infinity",
        (_set("staff", 3, "last_name = 'Forever'", "'infinity'"),),
        (_set("staff", 3, "last_name = 'Mortal'"),),
    ),
    Kind(
        "NULL once NOT NULL was dropped",
        "design", 6, "design_name", "missing", "raw", None,
        (
            "ALTER TABLE design ALTER COLUMN design_name DROP NOT NULL",
            _set("design", 6, "design_name = NULL"),
        ),
        (_set("design", 6, "design_name = 'Named'"),),
    ),
    Kind(
        "four decimal places where money has two",
        "sales_order", 11, "unit_price", "does_not_fit", "raw", "1.2345",
        (
            "ALTER TABLE sales_order ALTER COLUMN unit_price TYPE numeric(12,4)",
            _set("sales_order", 11, "unit_price = 1.2345"),
        ),
        (_set("sales_order", 11, "unit_price = 1.23"),),
    ),
    Kind(
        "more money than numeric(10,2) holds",
        "payment", 12, "payment_amount", "does_not_fit", "raw", "1234567890.12",
        (
            "ALTER TABLE payment ALTER COLUMN payment_amount TYPE numeric(14,2)",
            _set("payment", 12, "payment_amount = 1234567890.12"),
        ),
        (_set("payment", 12, "payment_amount = 1234.12"),),
    ),
    Kind(
        "microseconds once timestamp(6)",
        "sales_order", 12, "last_updated", "does_not_fit", "raw", "2026-11-30 10:00:00.123456",
        (
            "ALTER TABLE sales_order ALTER COLUMN last_updated TYPE timestamp(6)",
            _set("sales_order", 12, "units_sold = 3", "'2026-11-30 10:00:00.123456'"),
        ),
        (_set("sales_order", 12, "units_sold = 4"),),
    ),
    Kind(
        "a number too big for an integer once bigint",
        "sales_order", 13, "units_sold", "does_not_fit", "raw", "3000000000",
        (
            "ALTER TABLE sales_order ALTER COLUMN units_sold TYPE bigint",
            _set("sales_order", 13, "units_sold = 3000000000"),
        ),
        (_set("sales_order", 13, "units_sold = 300"),),
    ),
    Kind(
        "a currency code with no ISO 4217 name",
        "currency", 2, "currency_code", "unknown_currency", "processed", "XYZ",
        (_set("currency", 2, "currency_code = 'XYZ'"),),
        (_set("currency", 2, "currency_code = 'USD'"),),
    ),
]  # fmt: skip


def _source(pipeline: Pipeline, statements: tuple[str, ...]) -> None:
    with pipeline.source().begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def _zone_entries(pipeline: Pipeline, zone: str) -> list[dict]:
    lake, kind = (
        (pipeline.raw, RawManifest) if zone == "raw" else (pipeline.processed, ProcessedManifest)
    )
    found = []
    for manifest in manifests.runs_after(lake, 0, kind):
        found += read_parquet(lake, manifest.quarantine.keys).to_pylist()
    return found


def _warehouse_entries(pipeline: Pipeline) -> list[dict]:
    with pipeline.warehouse().connect() as conn:
        rows = conn.execute(text("SELECT * FROM totesys_meta.quarantine ORDER BY key"))
        return [dict(r._mapping) for r in rows]


def _everything_but(pipeline: Pipeline, set_aside: dict[str, list[int]]) -> None:
    """Every star table equals the expectation as of now, but for the set-aside keys of
    each source table (the expectation reads the source with those rows left out: their
    bad values may not even parse)."""
    shadow = "WITH " + ", ".join(
        f'"{table}" AS (SELECT * FROM "{table}" WHERE {table}_id NOT IN '
        f"({', '.join(map(str, keys))}))"
        for table, keys in set_aside.items()
    )
    with pipeline.source().connect() as conn:
        for name in STAR_TABLES:
            if name == "dim_date":
                continue  # the calendar and the facts' history: once the rows are fixed
            wanted = sorted(
                tuple(r) for r in conn.execute(text(f"{shadow} {expected.QUERIES[name]}"))
            )
            relation = latest_view_name(name) if star(name).is_fact else name
            mine = set_aside.get(star(name).source, [])
            # every star row starts with its source key
            held = [r for r in pipeline.actual(name, relation) if r[0] not in mine]
            assert held == wanted, name


def _by_table(cases: list[Kind]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for case in cases:
        found.setdefault(case.table, []).append(case.key)
    return {table: sorted(keys) for table, keys in sorted(found.items())}


def test_every_kind_of_bad_value_is_set_aside_listed_and_resolved_once_fixed(after_first_run):
    """Every kind at once, as a bad day brings them, among good changes: one run sets
    each aside apart from the others; once each source row is fixed, one run resolves
    them all. Each assertion names the kind it is about."""
    pipeline = after_first_run()
    pipeline.activity()  # good changes in the same run as the bad ones
    for case in KINDS:
        _source(pipeline, case.breaks)
    run = pipeline.here("--log-format", "json", "run-all")
    assert run.returncode == 0, run.stderr

    # each bad version is in its zone's quarantine, and in the warehouse's
    zones = {zone: _zone_entries(pipeline, zone) for zone in ("raw", "processed")}
    recorded = {(e["source_table"], e["key"]): e for e in _warehouse_entries(pipeline)}
    for case in KINDS:
        found = [
            (e["column"], e["kind"], e["value"])
            for e in zones[case.zone]
            if (e["source_table"], e["key"]) == (case.table, case.key)
        ]
        assert found == [(case.column, case.kind, case.value)], case.name
        entry = recorded.pop((case.table, case.key), {})
        assert (entry.get("column_name"), entry.get("resolved_in")) == (case.column, None), (
            case.name
        )
    assert recorded == {}  # and nothing else
    lines = [json.loads(line) for line in run.stderr.splitlines()]
    assert lines[-1]["message"] == "run succeeded" and lines[-1]["quarantined"] == len(KINDS)
    warned = Counter()
    for line in lines:
        if line["level"] == "WARNING" and line.get("quarantined"):
            zone = "raw" if "in the raw quarantine" in line["message"] else "processed"
            warned[(line["table"], zone)] += line["quarantined"]
    assert warned == Counter((case.table, case.zone) for case in KINDS)  # one line per zone
    assert "Traceback" not in run.stderr and "unexpected" not in run.stderr
    set_aside = _by_table(KINDS)
    _everything_but(pipeline, set_aside)  # everything else of the run went through

    env = pipeline.env()
    status = json.loads(invoke("status", "--json", env=env).stdout)
    assert status["quarantined"] == len(KINDS)
    shown = {(e["source_table"], e["key"]) for e in status["quarantine"]}
    assert len(shown) == min(len(KINDS), SHOWN)  # the newest
    assert shown <= {(case.table, case.key) for case in KINDS}
    listed = invoke("quarantine", env=env)
    assert listed.exit_code == 0
    for case in KINDS:
        assert case.column in listed.stdout and case.table in listed.stdout, case.name
    verified = invoke("verify", env=env)
    assert verified.exit_code == 0, verified.stdout + verified.stderr
    prefix = "quarantined, left out of both sides: "
    (line,) = [x for x in verified.stdout.splitlines() if x.startswith(prefix)]
    named = dict(part.split(" ", 1) for part in line[len(prefix) :].split(" (")[0].split("; "))
    assert {t: sorted(map(int, keys.split(", "))) for t, keys in named.items()} == set_aside

    for case in KINDS:
        _source(pipeline, case.fixes)
    fixed = pipeline.here("run-all")
    assert fixed.returncode == 0, fixed.stderr
    unresolved = [e for e in _warehouse_entries(pipeline) if e["resolved_in"] is None]
    assert unresolved == [] and len(_warehouse_entries(pipeline)) == len(KINDS)
    assert invoke("quarantine", env=env).stdout == "no open entries\n"
    pipeline.assert_matches_source()
    assert invoke("verify", env=env).exit_code == 0


def test_the_2099_design_ends_with_its_corrected_name(after_first_run):
    """The dimension guard never held the 2099 version, so the correction lands."""
    pipeline = after_first_run()
    _source(pipeline, (_set("design", 5, "design_name = 'Wrong'", "'2099-01-01'"),))
    assert pipeline.here("run-all").returncode == 0
    _source(pipeline, (_set("design", 5, "design_name = 'Right'"),))
    assert pipeline.here("run-all").returncode == 0
    with pipeline.warehouse().connect() as conn:
        name = conn.execute(text("SELECT design_name FROM dim_design WHERE design_id = 5"))
        assert name.scalar_one() == "Right"
        guard = conn.execute(
            text(
                "SELECT source_last_updated FROM totesys_meta.dimension_versions "
                "WHERE dimension = 'dim_design' AND key = 5"
            )
        ).scalar_one()
    assert guard.year < 2099


def test_an_order_waits_for_a_design_not_extracted_yet_and_then_flows(after_first_run):
    """`extract --table` of the orders alone: the new order waits for its design (set
    aside, the run exits 0); the next full run brings the design and the order."""
    pipeline = after_first_run()
    with pipeline.source().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO design (design_id, design_name, file_location, file_name, "
                f"last_updated) VALUES (9001, 'New', '/new', 'new.json', {NOW})"
            )
        )
        conn.execute(text(_set("sales_order", 14, "design_id = 9001")))
    for step in (("extract", "--table", "sales_order"), ("transform",), ("load",)):
        result = pipeline.here(*step)
        assert result.returncode == 0, result.stderr
    (recorded,) = _warehouse_entries(pipeline)
    assert (recorded["source_table"], recorded["key"], recorded["kind"]) == (
        "sales_order",
        14,
        "missing_parent",
    )
    assert recorded["column_name"] == "design_id" and recorded["value"] == "9001"
    assert pipeline.here("run-all").returncode == 0
    (recorded,) = _warehouse_entries(pipeline)
    assert recorded["resolved_in"] is not None
    pipeline.assert_matches_source()


def test_orders_in_a_currency_set_aside_wait_for_it(after_first_run):
    """A parent set aside holds back what references it, and lets it go once fixed."""
    pipeline = after_first_run()
    with pipeline.source().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO currency (currency_id, currency_code, last_updated) "
                f"VALUES (4, 'XYZ', {NOW})"
            )
        )
        conn.execute(text(_set("sales_order", 15, "currency_id = 4")))
    assert pipeline.here("run-all").returncode == 0
    assert {(e["source_table"], e["key"], e["kind"]) for e in _warehouse_entries(pipeline)} == {
        ("currency", 4, "unknown_currency"),
        ("sales_order", 15, "missing_parent"),
    }
    # reprocessing a window re-reads the waiting order: it still waits once, set aside once
    for _ in range(2):
        again = pipeline.here("--log-format", "json", "run-all", "--since", "2000-01-01")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stderr.splitlines()[-1])["quarantined"] == 0
        newest = manifests.latest(pipeline.processed, ProcessedManifest)
        waiting = read_parquet(pipeline.processed, newest.waiting["fact_sales_order"].keys)
        assert waiting.column("sales_order_id").to_pylist() == [15]
    _source(pipeline, (_set("currency", 4, "currency_code = 'EUR'"),))
    assert pipeline.here("run-all").returncode == 0
    assert all(e["resolved_in"] for e in _warehouse_entries(pipeline))
    pipeline.assert_matches_source()


def _open_entries(pipeline: Pipeline) -> list[tuple]:
    return [
        (e["source_table"], e["key"], e["kind"])
        for e in _warehouse_entries(pipeline)
        if e["resolved_in"] is None
    ]


FIXED_IN_PLACE = [
    # (source table, key, the break (last_updated moved), the fix in place (untouched))
    (
        "sales_order",  # a date the transform sets aside
        7,
        (_set("sales_order", 7, "agreed_delivery_date = '2026-13-45'"),),
        "UPDATE sales_order SET agreed_delivery_date = '2026-12-25' WHERE sales_order_id = 7",
    ),
    (
        "currency",  # a currency code
        2,
        (_set("currency", 2, "currency_code = 'XYZ'"),),
        "UPDATE currency SET currency_code = 'USD' WHERE currency_id = 2",
    ),
    (
        "sales_order",  # a number the extract sets aside
        13,
        (
            "ALTER TABLE sales_order ALTER COLUMN units_sold TYPE bigint",
            _set("sales_order", 13, "units_sold = 3000000000"),
        ),
        "UPDATE sales_order SET units_sold = 300 WHERE sales_order_id = 13",
    ),
]


def test_values_fixed_in_place_arrive_and_resolve_their_entries(after_first_run):
    """A DBA fixes each value and leaves last_updated as it was: the same version, now
    valid, reaches the warehouse exactly once and its entry closes."""
    pipeline = after_first_run()
    for _, _, breaks, _ in FIXED_IN_PLACE:
        _source(pipeline, breaks)
    assert pipeline.here("run-all").returncode == 0
    wanted = sorted((table, key) for table, key, _, _ in FIXED_IN_PLACE)
    assert sorted((table, key) for table, key, _ in _open_entries(pipeline)) == wanted
    _source(pipeline, tuple(fixes for _, _, _, fixes in FIXED_IN_PLACE))
    fixed = pipeline.here("run-all")
    assert fixed.returncode == 0, fixed.stderr
    assert _open_entries(pipeline) == []
    pipeline.assert_matches_source()
    assert invoke("verify", env=pipeline.env()).exit_code == 0
    # and a quiet run after it changes nothing
    assert pipeline.here("run-all").returncode == 0
    assert _open_entries(pipeline) == []
    pipeline.assert_matches_source()


def test_a_version_ahead_of_the_clock_goes_through_once_it_is_not_and_resolves(after_first_run):
    """An application clock three minutes fast: set aside with no tolerance, it goes
    through with ten minutes' tolerance, and its entry closes."""
    pipeline = after_first_run()
    ahead = f"{NOW} + interval '3 minutes'"
    _source(pipeline, (_set("sales_order", 10, "units_sold = 1", ahead),))
    early = pipeline.here("run-all", "--clock-skew", "0")
    assert early.returncode == 0, early.stderr
    assert _open_entries(pipeline) == [("sales_order", 10, "in_the_future")]
    later = pipeline.here("run-all", "--clock-skew", "10")
    assert later.returncode == 0, later.stderr
    assert _open_entries(pipeline) == []
    pipeline.assert_matches_source()
    verified = invoke("verify", env=pipeline.env())
    assert verified.exit_code == 0 and "quarantined" not in verified.stdout, verified.stdout


def test_a_value_still_bad_when_read_again_is_not_set_aside_twice(after_first_run):
    """The overlap re-reads a version still bad: it stays one open entry, and the runs
    that re-read it find nothing new."""
    pipeline = after_first_run()
    _source(pipeline, (_set("sales_order", 7, "agreed_delivery_date = '2026-13-45'"),))
    assert pipeline.here("run-all").returncode == 0
    again = pipeline.here("--log-format", "json", "run-all", "--since", "2000-01-01")
    assert again.returncode == 0, again.stderr
    last = json.loads(again.stderr.splitlines()[-1])
    assert last["message"] == "run succeeded" and last["quarantined"] == 0, last
    assert _open_entries(pipeline) == [("sales_order", 7, "not_a_date")]


@pytest.fixture
def ascii_pipeline(pg, warehouse_url, tmp_path):
    """A source whose database encoding is SQL_ASCII: it stores whatever bytes it is given."""
    from tests.support import TEST_SEED, TEST_SIZES
    from totesys_cli.demo import generator

    name = f"ascii_{tmp_path.name[-20:]}".lower().replace("-", "_")
    with pg.admin().connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(
            text(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'SQL_ASCII' "
                "LC_COLLATE 'C' LC_CTYPE 'C'"
            )
        )
        # the tests' own sessions send UTF-8 (the generated names are not all ASCII)
        conn.execute(text(f"ALTER DATABASE {name} SET client_encoding = 'UTF8'"))
    with pg.engine(name).begin() as conn:
        generator.generate_source(conn, TEST_SIZES, seed=TEST_SEED)
    pipeline = Pipeline(pg.url(name), warehouse_url, tmp_path / "lake")
    assert pipeline.here("run-all").returncode == 0
    pipeline.remember()
    yield pipeline
    pg.drop_database(name)


def test_text_that_is_not_utf8_is_set_aside_or_carried_never_a_failed_run(ascii_pipeline):
    """Latin-1 bytes in a column the warehouse holds set that version aside; in a contact
    the warehouse does not hold, they travel escaped; every run succeeds."""
    pipeline = ascii_pipeline
    _source(
        pipeline,
        (
            _set("counterparty", 2, "commercial_contact = E'Jos\\xe9 M\\xfcller'"),
            _set("staff", 4, "last_name = E'M\\xfcller'"),
            _set("sales_order", 5, "units_sold = 77"),
        ),
    )
    run = pipeline.here("--log-format", "json", "run-all")
    assert run.returncode == 0, run.stderr
    assert "unexpected" not in run.stderr and "ArrowInvalid" not in run.stderr
    assert _open_entries(pipeline) == [("staff", 4, "not_utf8")]
    (entry,) = _zone_entries(pipeline, "raw")
    assert (entry["column"], entry["value"]) == ("last_name", "M\\xfcller")
    assert "counterparty.commercial_contact holds text that is not UTF-8 (keys 2)" in run.stderr
    with pipeline.warehouse().connect() as conn:
        assert conn.execute(
            text("SELECT units_sold FROM fact_sales_order_latest WHERE sales_order_id = 5")
        ).scalar_one() == 77  # fmt: skip
    (raw_row,) = [
        r
        for r in pipeline.star_rows("dim_counterparty")
        if r["counterparty_id"] == 2 and r["source_last_updated"] is not None
    ][-1:]
    assert raw_row["counterparty_legal_name"]  # the counterparty itself went through

    _source(pipeline, ("UPDATE staff SET last_name = 'Muller' WHERE staff_id = 4",))
    fixed = pipeline.here("run-all")
    assert fixed.returncode == 0, fixed.stderr
    assert _open_entries(pipeline) == []
    pipeline.assert_matches_source()
    assert invoke("verify", env=pipeline.env()).exit_code == 0


def test_a_bad_value_in_a_column_the_warehouse_does_not_hold_sets_nothing_aside(after_first_run):
    """An account number that outgrew its type: the payment's change still loads."""
    pipeline = after_first_run()
    _source(
        pipeline,
        (
            "ALTER TABLE payment ALTER COLUMN company_ac_number TYPE bigint",
            _set("payment", 9, "company_ac_number = 5000000000, paid = NOT paid"),
        ),
    )
    run = pipeline.here("run-all")
    assert run.returncode == 0, run.stderr
    assert "1 value of the source column payment.company_ac_number does not fit" in run.stderr
    assert _warehouse_entries(pipeline) == []
    pipeline.assert_matches_source()


def test_a_stored_escape_sequence_never_reaches_the_terminal(after_first_run):
    """A value set aside holds an escape sequence (clear the screen, then red): the
    listings show it written out, harmless."""
    pipeline = after_first_run()
    _source(
        pipeline,
        (_set("sales_order", 7, "agreed_delivery_date = E'\\x1b[2J\\x1b[31m2026-13-45'"),),
    )
    assert pipeline.here("run-all").returncode == 0
    for command in (("quarantine",), ("status",)):
        shown = pipeline.here(*command)
        assert shown.returncode == 0, shown.stderr
        assert "\x1b" not in shown.stdout + shown.stderr
        assert "\\x1b[2J\\x1b[31m2026-13-45" in shown.stdout
