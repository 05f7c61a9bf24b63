"""The deadline: a run stops between units of work when its time is spent, and a run
hung in a call that does not return is ended by the hard stop; a command run in this
process leaves nothing running behind it."""

from __future__ import annotations

import socket
import threading
import time

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
    timeout, four times; the hard stop ends the process at the deadline plus 30 s."""
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
        env={"AWS_ENDPOINT_URL": endpoint},
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
    assert 31 <= elapsed < 60, elapsed
