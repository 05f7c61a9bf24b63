"""What every writing run holds while it runs: the endpoints it opened (`endpoints`),
the warehouse lock (`lock`), and the deadline with its hard stop (`deadline`)."""

from totesys_cli.runtime.deadline import HARD_STOP_GRACE, Deadline, hard_stop
from totesys_cli.runtime.lock import LOCK_KEY, run_lock

__all__ = ["HARD_STOP_GRACE", "LOCK_KEY", "Deadline", "hard_stop", "run_lock"]
