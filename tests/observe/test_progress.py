"""On a terminal a long extract and a load draw a bar, the log lines above it; off a
terminal there is no bar, only the log lines."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from tests.support import Pipeline
from totesys_cli.observe import logs, progress


@contextlib.contextmanager
def _terminal() -> Iterator[None]:
    """Text logs on stderr and bars shown, as the CLI sets them up on a terminal."""
    logs.configure("INFO", "text")
    progress.show(True)
    try:
        yield
    finally:
        progress.show(False)
        logs.shutdown()


def test_a_terminal_shows_a_bar_per_ranged_table_and_per_loaded_run(
    pg, source_url, warehouse_url, tmp_path, capsys
):
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    with _terminal():
        pipeline.extract(budget=60, range_rows=50)
        shown = capsys.readouterr().err
        pipeline.transform()
        pipeline.load()
        loaded = capsys.readouterr().err
    assert "extract sales_order" in shown and "keys" in shown and "\r" in shown
    line = next(x for x in shown.splitlines() if "extract run 1 committed" in x)
    assert line.rsplit("\r", 1)[-1].split()[1] == "INFO"  # a whole log line, above the bar
    assert "load run 1" in loaded and "rows" in loaded


def test_a_window_read_in_one_range_draws_no_bar(pg, source_url, tmp_path, capsys):
    pipeline = Pipeline(source_url, None, tmp_path / "lake")
    with _terminal():
        pipeline.extract(tables=("sales_order",), budget=60)
    assert "\r" not in capsys.readouterr().err


def test_off_a_terminal_there_are_only_log_lines(pg, source_url, warehouse_url, tmp_path):
    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    ran = pipeline.cli("run-all", "--range-rows", "50")  # stderr is a pipe
    assert ran.returncode == 0, ran.stderr
    assert "\r" not in ran.stderr and "keys/s" not in ran.stderr
    pipeline.activity()
    jsons = pipeline.cli("--log-format", "json", "run-all", "--range-rows", "50")
    assert jsons.returncode == 0, jsons.stderr
    assert "\r" not in jsons.stderr
    lines = [json.loads(line) for line in jsons.stderr.splitlines()]
    assert lines[-1]["message"] == "run succeeded" and lines[-1]["extracted"] > 0
