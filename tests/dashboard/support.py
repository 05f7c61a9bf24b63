"""The dashboard as the tests serve and ask it: the real command on a free loopback
port, and plain HTTP GETs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import TOTESYS, free_port


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _as_from_a_terminal() -> None:
    """SIGINT as a shell gives it to a foreground command (a test runner started in the
    background inherits it ignored, and so would the dashboard)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def serving(
    warehouse_url: str,
    folder: Path,
    stop=signal.SIGINT,
    args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """The real command serving a warehouse on a free loopback port, then stopped as a
    person (SIGINT) or a service manager (SIGTERM) stops it; its log in a file, so a
    chatty server never blocks on a pipe nobody reads."""
    port = free_port()
    with (folder / "dashboard.log").open("w+") as log:
        proc = subprocess.Popen(
            [TOTESYS, "dashboard", "--warehouse-url", warehouse_url, "--port", str(port), *args],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            # SIGABRT shows where it hangs
            env={**os.environ, "PYTHONFAULTHANDLER": "1", **(env or {})},
            preexec_fn=_as_from_a_terminal,
        )
        line = proc.stdout.readline()
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"the dashboard did not start: {log.read()}")
        assert line == f"dashboard on http://127.0.0.1:{port}/ (Ctrl-C stops it)\n"
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            proc.send_signal(stop)
            try:
                out, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)
                proc.communicate(timeout=30)
                log.seek(0)
                pytest.fail(f"the dashboard did not stop on {stop!r}: {log.read()}")
        log.seek(0)
        assert proc.returncode == 0, log.read()
        assert out == "dashboard stopped\n"
