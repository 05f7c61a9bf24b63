"""Where each piece of state came from, checked before a run touches anything.

A raw zone is read only by the processed zone built from it, and a warehouse is loaded
only from the processed zone it was loaded from: pointed at another (a typo in
TOTESYS_LAKE_URL, a new bucket), a run is refused with both named, rather than
loading nothing for ever or mixing two histories. Moving a warehouse to a new lake is
the explicit `totesys rebuild --yes`.
"""

from __future__ import annotations

from totesys_cli.db import engine, translate_errors
from totesys_cli.db.warehouse import lineage
from totesys_cli.endpoints import PROCESSED, RAW, WAREHOUSE, Endpoints
from totesys_cli.errors import ConfigError
from totesys_cli.lake import Lake, zone
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.manifest import ProcessedManifest
from totesys_cli.lake.zone import Identity
from totesys_cli.settings import envvar

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


def _raw_of_processed(raw: Lake, processed: Lake, raw_zone: Identity | None) -> None:
    last = manifests.latest(processed, ProcessedManifest)
    if last is None or last.raw_zone is None:
        return
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
            return
        was = f"{known.url} (zone {known.zone})"
    else:  # an older warehouse: the zone holding its newest loaded run is its own
        seq, run_id = known.newest_run
        if seq in dict(manifests.manifests_after(processed, seq - 1)):
            ran = manifests.read(processed, manifests.manifest_key(seq), ProcessedManifest)
            if ran.run_id == run_id:
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
