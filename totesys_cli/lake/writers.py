"""Runs that write a zone without the warehouse lock announce themselves in it.

`lake gc` with the warehouse lock knows that no locked run is writing, but a run
configured without a warehouse takes no lock. Such a run writes `_writers/<run id>`
before its first file and removes it after its manifest; gc keeps every file newer than
a live announcement (all of that run's files are), whatever its grace. A killed run's
announcement lives until the run's own deadline (plus the hard stop's grace) has
passed, then it is garbage like any uncommitted file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
from collections.abc import Iterator

from totesys_cli.errors import RuntimeFailure
from totesys_cli.lake.store import Lake, StoredObject

log = logging.getLogger(__name__)

WRITERS = "_writers"
# how long the announcement of a run with no deadline protects what it writes
UNBOUNDED = dt.timedelta(hours=24)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@contextlib.contextmanager
def announced(zones: list[Lake], run_id: str, longest: dt.timedelta | None) -> Iterator[None]:
    """Inside: this run is announced as writing these zones."""
    key = f"{WRITERS}/{run_id}.json"
    until = _now() + (longest if longest is not None else UNBOUNDED)
    body = json.dumps({"run_id": run_id, "until": until.isoformat(sep=" ")}).encode()
    done = []
    try:
        for zone in zones:
            zone.put(key, body)
            done.append(zone)
        yield
    finally:
        for zone in done:
            try:
                zone.delete([key])
            except Exception as err:  # it lapses at its deadline anyway
                log.warning("could not remove %s/%s: %s", zone.url, key, err)


def _until(zone: Lake, item: StoredObject) -> dt.datetime | None:
    """When an announcement lapses (None: removed meanwhile, its run has committed)."""
    try:
        return dt.datetime.fromisoformat(json.loads(zone.get(item.key))["until"])
    except (ValueError, KeyError, TypeError):
        return item.modified + UNBOUNDED  # unreadable: as long as a run without a deadline
    except RuntimeFailure:
        return None


def live(zone: Lake) -> list[StoredObject]:
    """The announcements of runs that may still be writing this zone."""
    now = _now()
    return [item for item in zone.list(f"{WRITERS}/") if (_until(zone, item) or now) > now]
