"""Named kill points, for proving that a SIGKILL at any commit point is harmless.

`TOTESYS_KILL_AT=name` (or `name:N`, the N-th time) makes the process kill itself with
SIGKILL when it reaches that point. Read once at start-up; an unset variable costs one
comparison per point.
"""

from __future__ import annotations

import os
import signal

_target, _, _count = os.environ.get("TOTESYS_KILL_AT", "").partition(":")
_remaining = int(_count or 1)

POINTS = (
    "extract.file_written",  # a data file is in the lake, more are coming
    "extract.before_manifest",  # every file written, the manifest not
    "extract.after_manifest",  # the extract is committed
    "transform.file_written",
    "transform.before_manifest",
    "transform.after_manifest",
    "load.before_commit",  # the run's rows are applied inside the open transaction
    "load.after_commit",  # the run is committed in the warehouse
)


def point(name: str) -> None:
    global _remaining
    if name != _target:
        return
    _remaining -= 1
    if _remaining <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
