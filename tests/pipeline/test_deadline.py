"""The deadline: a run stops between units of work when its time is spent, and a run
hung in a call that does not return is ended by the hard stop; a command run in this
process leaves nothing running behind it."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.support import invoke, totesys


def _started_threads(command) -> list[threading.Thread]:
    before = set(threading.enumerate())
    command()
    return [t for t in threading.enumerate() if t not in before and t.is_alive()]


def test_a_command_run_in_process_leaves_no_timer_or_thread_behind(source_url, tmp_path):
    """The hard stop's timer would otherwise end this process --max-runtime + 30 s later."""
    lake = str(tmp_path / "lake")

    def succeeding() -> None:
        assert invoke("extract", "--source-url", source_url, "--lake-url", lake).exit_code == 0

    def failing() -> None:
        url = "postgresql://u@127.0.0.1:9/dw"
        assert invoke("load", "--warehouse-url", url, "--lake-url", lake).exit_code == 1

    assert _started_threads(succeeding) == []
    assert _started_threads(failing) == []


def test_a_run_hung_past_its_deadline_is_ended_by_the_hard_stop(aws_env):
    """S3 that accepts and never answers: the call would wait for its own 60 s read
    timeout, four times; the hard stop ends the process at the deadline plus its grace
    (30 s, 3 s here). A slower machine only starts the process later: the timer runs
    from the run's start."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(hung.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    endpoint = f"http://127.0.0.1:{hung.getsockname()[1]}"
    started = time.perf_counter()
    result = totesys(
        "extract",
        "--source-url",
        "postgresql://u@127.0.0.1:9/totesys",
        "--lake-url",
        "s3://lake/raw",
        "--max-runtime",
        "1",
        env={"AWS_ENDPOINT_URL": endpoint, "TOTESYS_HARD_STOP_GRACE": "3"},
        timeout=90,
    )
    elapsed = time.perf_counter() - started
    hung.close()
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "ERROR   [extract] the run passed its --max-runtime of 1 s and did not stop; exiting"
        )
    )
    assert 4 <= elapsed < 60, elapsed  # not the four read timeouts


@pytest.mark.parametrize("held", [5.5, 7])
def test_a_deadline_too_short_to_progress_says_so_and_names_one_that_would(
    source_url, warehouse_url, tmp_path, held
):
    """A run whose start-up takes most of its deadline (held here by a lock on the run
    history, not by seconds of a slow machine) brings nothing new: it still succeeds,
    with a WARNING naming a deadline that would progress. The lock is released `held`
    seconds after the run is seen waiting on it (its deadline has started by then), so
    however slowly the process starts: after 5.5 s of 10 the extract's share (4 s) is
    spent and it reads only the first table's overlap; after 7 s the plan's 30 % in
    hand is all that is left and the run reads nothing."""
    import json
    import subprocess

    from sqlalchemy import text

    from tests.support import TOTESYS, Pipeline

    pipeline = Pipeline(source_url, warehouse_url, tmp_path / "lake")
    with pipeline.source().begin() as conn:  # the first table has a row in every overlap
        conn.execute(
            text(
                "UPDATE address SET last_updated = (now() AT TIME ZONE 'UTC')::timestamp(3) "
                "WHERE address_id = 1"
            )
        )
    assert pipeline.here("run-all").returncode == 0
    holder, watcher = pipeline.warehouse().connect(), pipeline.warehouse().connect()
    holder.execute(text("LOCK TABLE totesys_meta.runs IN ACCESS EXCLUSIVE MODE"))
    process = subprocess.Popen(
        [TOTESYS, "--log-format", "json", "run-all", "--max-runtime", "10"],
        env=pipeline.process_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    waiting = text(
        "SELECT count(*) FROM pg_locks "
        "WHERE relation = 'totesys_meta.runs'::regclass AND NOT granted"
    )
    try:
        for _ in range(600):  # the run's first write to its history waits on the lock
            if watcher.execute(waiting).scalar_one() or process.poll() is not None:
                break
            watcher.rollback()
            time.sleep(0.1)
        time.sleep(held)
    finally:
        holder.rollback()
        holder.close()
        watcher.close()
    stderr = process.communicate(timeout=120)[1]
    run = subprocess.CompletedProcess(process.args, process.returncode, "", stderr)
    assert run.returncode == 0, run.stderr
    lines = [json.loads(line) for line in run.stderr.splitlines()]
    (warned,) = [x for x in lines if "too short for runs to progress" in x["message"]]
    assert warned["level"] == "WARNING"
    assert (warned["tables_read"] > 0) == (held < 7) and warned["tables_read"] < 11
    assert "give --max-runtime " in warned["message"]
    needed = int(warned["message"].rsplit("give --max-runtime ", 1)[1].split()[0])
    assert needed > 10
    assert lines[-1]["message"] == "run succeeded" and lines[-1]["loaded"] == 0
    quiet = pipeline.here("--log-format", "json", "run-all")  # with the default deadline
    assert "too short" not in quiet.stderr
