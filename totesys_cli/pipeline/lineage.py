"""Where each piece of state came from, checked before a run touches anything.

A raw zone is read only by the processed zone built from it, and a warehouse is loaded
only from the processed zone it was loaded from: pointed at another (a typo in
TOTESYS_LAKE_URL, a new bucket), a run is refused with both named, rather than
loading nothing for ever or mixing two histories. Moving a warehouse to a new lake is
the explicit `totesys rebuild --yes`.
"""

from __future__ import annotations

from totesys_cli.config.settings import envvar
from totesys_cli.db import engine, translate_errors
from totesys_cli.errors import ConfigError
from totesys_cli.lake import Lake, zone
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.manifest import ProcessedManifest, RawManifest
from totesys_cli.lake.zone import Identity
from totesys_cli.runtime.endpoints import PROCESSED, RAW, WAREHOUSE, Endpoints
from totesys_cli.warehouse.shape import lineage

REBUILD = "or reload the warehouse from this lake with totesys rebuild --yes"


def check(ends: Endpoints, writes: tuple[str, ...] = ()) -> None:
    """Refuse (exit 2) a zone of the wrong kind or another lineage than the state of
    what this step `writes` (raw, processed, warehouse); then give the zones it writes
    their identity."""
    zones = {RAW: ends.raw, PROCESSED: ends.processed}
    found = {}
    for role, lake in zones.items():
        if lake is not None:
            lake.check(create=role in writes)
            found[role] = _identity(lake, role)
    if PROCESSED in writes and ends.raw is not None:
        _raw_of_processed(ends.raw, ends.processed, found[RAW])
    if WAREHOUSE in writes and ends.processed is not None:
        _processed_of_warehouse(ends, found[PROCESSED])
    for role in writes:
        if role in zones and zones[role] is not None and found[role] is None:
            zone.claim(zones[role], role)


def _identity(lake: Lake, role: str) -> Identity | None:
    found = zone.identity(lake)
    if found is not None and found.kind != role:
        raise ConfigError(
            f"the {role} zone {lake.url} is a {found.kind} zone",
            f"Check {envvar(f'{role}_url')} (or {envvar('lake_url')})",
        )
    if found is None and manifests.latest_seq(lake):  # written before zones had an identity
        found = zone.claim(lake, role)
    return found


def _run_id(lake: Lake, seq: int, kind: type[manifests.M]) -> str | None:
    """The run id of run `seq` of a zone (None: the zone holds no such run)."""
    if seq not in dict(manifests.manifests_after(lake, seq - 1)):
        return None
    return manifests.read(lake, manifests.manifest_key(seq), kind).run_id


def _history(kind: str, lake: Lake, seq: int, run_id: str, reader: str) -> str | None:
    """None when the zone still holds run `seq` as `run_id`; else what it holds instead.
    A zone restored from an older copy, or a lagging replica, numbers new runs again
    from where the copy ends: by number alone they would be taken as read already."""
    found = _run_id(lake, seq, RawManifest if kind == RAW else ProcessedManifest)
    if found == run_id:
        return None
    holds = f"its run {seq} is {found}" if found else f"it holds no run {seq}"
    return (
        f"the {kind} zone {lake.url} is not the history {reader} read: {reader} read its "
        f"run {seq} ({run_id}), but {holds} (restored from an older copy?)"
    )


def _raw_of_processed(raw: Lake, processed: Lake, raw_zone: Identity | None) -> None:
    last = manifests.latest(processed, ProcessedManifest)
    if last is None or last.raw_zone is None:
        return
    if raw_zone is not None and raw_zone.id == last.raw_zone and last.raw_run_id:
        differs = _history(RAW, raw, last.raw_seq, last.raw_run_id, "the processed zone")
        if differs:
            raise ConfigError(
                differs,
                "Restore the raw zone as it was, or build a new processed zone from it and "
                "reload the warehouse from that with totesys rebuild --yes",
            )
    if raw_zone is None or raw_zone.id != last.raw_zone:
        now = raw_zone.describe(raw.url) if raw_zone else f"{raw.url} (a new zone)"
        raise ConfigError(
            f"the processed zone {processed.url} was built from the raw zone "
            f"{last.raw_url} (zone {last.raw_zone}), not from {now}",
            f"Point {envvar('raw_url')} (or {envvar('lake_url')}) back at it, "
            "or give this raw zone a processed zone of its own",
        )


def _processed_of_warehouse(ends: Endpoints, processed_zone: Identity | None) -> None:
    with translate_errors(ends.warehouse), engine(ends.warehouse).connect() as conn:
        known = lineage(conn)
    if known is None:
        return  # nothing loaded yet: the first load names the zone
    processed = ends.processed
    if known.zone is not None:
        if processed_zone is not None and processed_zone.id == known.zone:
            if known.newest_run is None:
                return
            differs = _history(PROCESSED, processed, *known.newest_run, "the warehouse")
            if differs is None:
                return
            raise ConfigError(differs, f"Restore the processed zone as it was, {REBUILD}")
        was = f"{known.url} (zone {known.zone})"
    else:  # an older warehouse: the zone holding its newest loaded run is its own
        seq, run_id = known.newest_run
        if _run_id(processed, seq, ProcessedManifest) == run_id:
            return
        was = f"a processed zone holding run {seq} ({run_id})"
    now = (
        processed_zone.describe(processed.url)
        if processed_zone
        else f"{processed.url} (a new zone)"
    )
    raise ConfigError(
        f"the warehouse was loaded from {was}, not from {now}",
        f"Point {envvar('processed_url')} (or {envvar('lake_url')}) back at it, {REBUILD}",
    )
