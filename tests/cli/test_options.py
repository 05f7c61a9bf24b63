"""Options are declared once and shared: every command that uses a setting takes it from
its option or its variable alike, and the option wins."""

from __future__ import annotations

import datetime as dt
import json

from tests.support import Pipeline
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.manifest import RawManifest


def _first_extract(pipeline: Pipeline) -> RawManifest:
    return manifests.read(pipeline.raw, manifests.manifest_key(1), RawManifest)


def test_run_all_reads_the_overlap_and_batch_size_from_their_variables(pipeline):
    run = pipeline.cli("run-all", TOTESYS_OVERLAP_MINUTES="7", TOTESYS_BATCH_ROWS="100")
    assert run.returncode == 0, run.stderr
    extracted = _first_extract(pipeline)
    assert extracted.overlap == dt.timedelta(minutes=7)
    payments = extracted.tables["payment"]
    assert len(payments.files) >= 4 and all(f.rows <= 100 for f in payments.files)
    pipeline.assert_matches_source()


def test_an_option_wins_over_its_variable(pipeline):
    run = pipeline.cli(
        "run-all", "--overlap", "3", "--batch-rows", "200", TOTESYS_OVERLAP_MINUTES="7"
    )
    assert run.returncode == 0, run.stderr
    extracted = _first_extract(pipeline)
    assert extracted.overlap == dt.timedelta(minutes=3)
    assert max(f.rows for f in extracted.tables["payment"].files) == 200


def test_run_all_reads_its_deadline_from_its_variable(after_first_run):
    """The deadline each run kept, as the run history records it (what a deadline does
    to a stalled run: tests/pipeline/test_failures.py)."""
    pipeline = after_first_run()
    assert pipeline.cli("run-all", TOTESYS_MAX_RUNTIME="123").returncode == 0
    assert pipeline.cli("load", "--max-runtime", "45", TOTESYS_MAX_RUNTIME="123").returncode == 0
    listed = json.loads(pipeline.cli("runs", "--json", "--limit", "2").stdout)
    assert [(r["command"], r["max_runtime"]) for r in listed] == [("load", 45), ("run-all", 123)]
