"""Progress bars for the long parts of a run, on a terminal only.

On a terminal with text logs, an extract reading a big window in ranges of keys and a
load applying a processed run show a bar (tqdm) on stderr, with the log lines printed
above it. Anywhere else (a schedule, a pipe, a file, JSON logs) there is no bar: only the
log lines, which say the same at each step's end.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Callable, Iterator

from totesys_cli.observe.logs import LOGGER_NAME

_shown = False


def show(on: bool) -> None:
    """Whether bars are drawn (the CLI: text logs on a terminal)."""
    global _shown
    _shown = on


def _nothing(_: int) -> None:
    return None


class _AboveTheBar(io.TextIOBase):
    """A log stream that writes above the bar instead of through it."""

    def write(self, text: str) -> int:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr, end="")
        return len(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextlib.contextmanager
def bar(what: str, total: int, unit: str) -> Iterator[Callable[[int], None]]:
    """A bar for `what` (advanced by the callable it yields, in `unit`s), or nothing."""
    if not _shown or total <= 0:
        yield _nothing
        return
    from tqdm import tqdm

    consoles = [
        h
        for h in logging.getLogger(LOGGER_NAME).handlers
        if isinstance(h, logging.StreamHandler) and h.stream is sys.stderr
    ]
    for handler in consoles:
        handler.setStream(_AboveTheBar())
    try:
        with tqdm(
            total=total, desc=what, unit=unit, unit_scale=True, leave=False, file=sys.stderr
        ) as shown:
            yield shown.update
    finally:
        for handler in consoles:
            handler.setStream(sys.stderr)
