"""lake gc: delete the files of runs that never committed, once they are old enough.

A run that crashed (or lost the race for its run number) left data files no manifest
names; nothing reads them. They are deleted only when older than the grace period, so
a run still writing its files is never touched, and whatever the grace, gc keeps every
file newer than the announcement of a run writing without the warehouse lock (see
`lake.writers`). Only what totesys writes is considered: a zone's table folders and its
`_manifests/`, `_quarantine/`, `_waiting/` and tombstones, so whatever else shares the
bucket (Athena's query results beside the processed zone) is left alone.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from totesys_cli.lake import Lake, StoredObject, writers
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.files import QUARANTINE, TOMBSTONES, WAITING
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


def committed_keys(zone: Lake, kind: type[Manifest]) -> set[str]:
    """Every manifest and every file a manifest names."""
    keep = {manifests.LATEST_HINT, IDENTITY_KEY}
    for _, key in manifests.manifests_after(zone, 0):
        keep.add(key)
        keep.update(manifests.read(zone, key, kind).keys())
    return keep


def _folders(kind: type[Manifest]) -> set[str]:
    """The top folders of a zone that totesys writes."""
    tables = SOURCE_TABLES if kind is RawManifest else STAR_TABLES
    tombstones = TOMBSTONES["raw" if kind is RawManifest else "processed"]
    return {*tables, manifests.MANIFESTS, QUARANTINE, WAITING, tombstones, writers.WRITERS}


def collect(raw: Lake, processed: Lake, grace: dt.timedelta, dry_run: bool = False) -> GcResult:
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
        keep = committed_keys(zone, kind)
        ours = _folders(kind)
        orphans = []
        for item in zone.list(""):
            if item.key in keep or item.key.split("/", 1)[0] not in ours:
                continue
            if item.modified > cutoff:
                result.kept_young += 1
                continue
            orphans.append(item)
            result.bytes += item.size
        if orphans and not dry_run:
            zone.delete([item.key for item in orphans])
        result.deleted[zone.url] = orphans
        log.info(
            "%s %d uncommitted %s in %s",
            "found" if dry_run else "deleted",
            len(orphans),
            "file" if len(orphans) == 1 else "files",
            zone.url,
            extra={"files": len(orphans), "bytes": sum(item.size for item in orphans)},
        )
        for item in orphans:
            log.debug("%s %s/%s", "would delete" if dry_run else "deleted", zone.url, item.key)
    return result
