"""lake gc: delete the files of runs that never committed, once they are old enough.

A run that crashed (or lost the race for its run number) left data files no manifest
names; nothing reads them. They are deleted only when older than the grace period, so
a run still writing its files is never touched, and whatever the grace, gc keeps every
file newer than the announcement of a run writing without the warehouse lock (see
`lake.writers`). Only what totesys writes is considered: a zone's table folders and its
`_manifests/`, `_quarantine/`, `_waiting/` and tombstones, so whatever else shares the
bucket (Athena's query results beside the processed zone) is left alone.

A run writes only into the partition of the day it runs, so orphans can appear only
in the days since the last pass: a pass records its cutoff in `_gc/last.json`, and the
next one lists only the partitions from the day before that cutoff on, the manifests
committed since and the announcements. What a pass costs is the days since the last
one, never the age of the lake. The first pass (or `--whole`) lists the whole zone.

A day `lake compact` has compacted (see `lake.compaction`) has its large files committed
by the day's record, and the small files they replace are garbage once the record is
older than the grace: a pass reads the records since the last one it reclaimed, lists
those days' partitions too, and deletes the small files (and the files of a compaction
killed before its record).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

from totesys_cli.errors import RuntimeFailure
from totesys_cli.lake import Lake, StoredObject, compaction, writers
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.files import QUARANTINE, TOMBSTONES, WAITING, partition
from totesys_cli.lake.manifest import Manifest, ProcessedManifest, RawManifest
from totesys_cli.lake.zone import IDENTITY_KEY
from totesys_cli.schemas import SOURCE_TABLES, STAR_TABLES

log = logging.getLogger(__name__)


@dataclass
class GcResult:
    deleted: dict[str, list[StoredObject]] = field(default_factory=dict)  # zone -> files
    kept_young: int = 0
    bytes: int = 0

    @property
    def count(self) -> int:
        return sum(len(keys) for keys in self.deleted.values())


LAST = "_gc/last.json"  # the last pass's cutoff and the newest run it found committed
# partitions listed before the last pass's cutoff: a run started the day before may
# still write, and a source's clock (the raw zone's day) may differ from this one
MARGIN = dt.timedelta(days=1)


@dataclass(frozen=True)
class _Pass:
    cutoff: dt.datetime
    seq: int
    compacted: dt.date | None = None  # the newest compacted day it reclaimed


def _last_pass(zone: Lake) -> _Pass | None:
    """The zone's last pass (None: none recorded, or unreadable: a whole pass)."""
    try:
        data = json.loads(zone.get(LAST))
        day = data.get("compacted")
        return _Pass(
            dt.datetime.fromisoformat(data["cutoff"]),
            int(data["seq"]),
            dt.date.fromisoformat(day) if day else None,
        )
    except (RuntimeFailure, ValueError, KeyError, TypeError):
        return None


def _folders(kind: type[Manifest]) -> set[str]:
    """The top folders of a zone that totesys writes."""
    tables = SOURCE_TABLES if kind is RawManifest else STAR_TABLES
    tombstones = TOMBSTONES["raw" if kind is RawManifest else "processed"]
    return {*tables, manifests.MANIFESTS, QUARANTINE, WAITING, tombstones, writers.WRITERS}


def _partitions(kind: type[Manifest], day: dt.date) -> list[str]:
    """Every folder a run of that day writes its data files in."""
    raw = kind is RawManifest
    day_folder = f"{partition('raw' if raw else 'processed', day)}/"
    tables = SOURCE_TABLES if raw else STAR_TABLES
    waiting = [] if raw else [f"{WAITING}/{t}" for t in STAR_TABLES]
    tombstones = TOMBSTONES["raw" if raw else "processed"]
    return [f"{folder}/{day_folder}" for folder in (*tables, QUARANTINE, tombstones, *waiting)]


def _days(last: _Pass) -> list[dt.date]:
    """The days a run can have written since the last pass."""
    day, today = (last.cutoff - MARGIN).date(), dt.datetime.now(dt.UTC).date()
    return [day + dt.timedelta(days=n) for n in range((today - day).days + 1)]


def _listed(
    zone: Lake, kind: type[Manifest], last: _Pass | None, days: list[dt.date]
) -> list[StoredObject]:
    """What may have been orphaned since the last pass (everything, without one), and
    the partitions of these days."""
    if last is None:
        return zone.list("")
    found = zone.list(f"{manifests.MANIFESTS}/", start_after=manifests.manifest_key(last.seq))
    found += zone.list(f"{writers.WRITERS}/")
    for day in days:
        for prefix in _partitions(kind, day):
            found += zone.list(prefix)
    return found


@dataclass
class _Compacted:
    """The compacted days a pass meets: their large files are committed; the small
    files of those compacted before the cutoff are reclaimed."""

    kept: set[str] = field(default_factory=set)
    reclaimed: set[str] = field(default_factory=set)
    newest: dt.date | None = None  # the newest day reclaimed, in order


def _compacted(zone: Lake, last: _Pass | None, days: list[dt.date], cutoff) -> _Compacted:
    found = _Compacted(newest=last.compacted if last else None)
    records = {r.day: r for r in compaction.records_after(zone, found.newest)}
    if last is not None:  # the days listed, compacted before the last pass reclaimed
        for day in days:
            if day not in records and (record := compaction.read(zone, day)) is not None:
                records[day] = record
    in_order = True
    for day, record in sorted(records.items()):
        found.kept |= record.keys()
        in_order = in_order and record.compacted_at <= cutoff
        if in_order and (found.newest is None or day > found.newest):
            found.reclaimed |= record.parts()
            found.newest = day
    return found


def _committed(
    zone: Lake, kind: type[Manifest], found: list[StoredObject], newest: int
) -> set[str]:
    """Of these objects, the committed ones: the manifests, and every file that the
    manifest of the run its name gives (`<table>/<day>/<run>-<run id>-<n>...`) names;
    `newest` is the newest run committed before they were listed."""
    keep = {manifests.LATEST_HINT, IDENTITY_KEY}
    runs = set()
    for item in found:
        name = item.key.rsplit("/", 1)[-1]
        if item.key.startswith(f"{manifests.MANIFESTS}/"):
            if name.endswith(".json") and name[:-5].isdigit():
                keep.add(item.key)
        elif (run := name.split("-", 1)[0]).isdigit():
            runs.add(int(run))
    # runs are numbered without gaps, so every number up to the newest has its manifest
    # (one that cannot be read fails the pass: its files are never taken for orphans);
    # a file of a number above it was not committed when listed (young, or orphaned)
    for seq in sorted(r for r in runs if r <= newest):
        keep.update(manifests.read(zone, manifests.manifest_key(seq), kind).keys())
    return keep


def collect(
    raw: Lake, processed: Lake, grace: dt.timedelta, dry_run: bool = False, whole: bool = False
) -> GcResult:
    result = GcResult()
    for zone, kind in ((raw, RawManifest), (processed, ProcessedManifest)):
        cutoff = dt.datetime.now(dt.UTC).replace(tzinfo=None) - grace
        running = writers.live(zone)
        if running:
            # a run without the lock writes here: everything it wrote is newer than this
            cutoff = min(cutoff, *(item.modified - dt.timedelta(seconds=1) for item in running))
            log.info(
                "%d run%s without the warehouse lock %s writing %s: files since %s are kept",
                len(running),
                "" if len(running) == 1 else "s",
                "is" if len(running) == 1 else "are",
                zone.url,
                cutoff.isoformat(sep=" ", timespec="seconds"),
            )
        newest = manifests.latest_seq(zone)  # before listing: what commits later is newer
        last = None if whole else _last_pass(zone)
        days = _days(last) if last else []
        compacted = _compacted(zone, last, days, cutoff)
        # the days compacted since the last pass, so that their small files are found
        days += sorted({compaction.day_of(k) for k in compacted.reclaimed} - {*days, None})
        found = _listed(zone, kind, last, days)
        keep = (_committed(zone, kind, found, newest) | compacted.kept) - compacted.reclaimed
        ours = _folders(kind)
        orphans = []
        for item in found:
            if item.key in keep or item.key.split("/", 1)[0] not in ours:
                continue
            if item.modified > cutoff:
                result.kept_young += 1
                continue
            orphans.append(item)
            result.bytes += item.size
        if orphans and not dry_run:
            zone.delete([item.key for item in orphans])
        if not dry_run:
            done = {"cutoff": cutoff.isoformat(sep=" "), "seq": newest}
            if compacted.newest is not None:
                done["compacted"] = compacted.newest.isoformat()
            zone.put(LAST, json.dumps(done).encode())
        result.deleted[zone.url] = orphans
        log.info(
            "%s %d uncommitted %s in %s",
            "found" if dry_run else "deleted",
            len(orphans),
            "file" if len(orphans) == 1 else "files",
            zone.url,
            extra={
                "files": len(orphans),
                "bytes": sum(item.size for item in orphans),
                "listed": len(found),
                "since": None if last is None else (last.cutoff - MARGIN).date().isoformat(),
            },
        )
        for item in orphans:
            log.debug("%s %s/%s", "would delete" if dry_run else "deleted", zone.url, item.key)
    return result
