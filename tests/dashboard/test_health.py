"""The pipeline page sizes each zone from what its newest manifest counts: the same
objects and bytes a listing finds, without listing the lake."""

from __future__ import annotations

import json
from types import SimpleNamespace

from totesys_cli.dashboard import health
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake.store import LocalLake

# what a zone holds besides its runs' files and manifests
NOT_COUNTED = ("_zone.json", manifests.LATEST_HINT, "_gc/")


def _committed(zone) -> tuple[int, int]:
    found = [o for o in zone.list("") if not o.key.startswith(NOT_COUNTED)]
    return len(found), sum(o.size for o in found)


def _listings(monkeypatch) -> list[str]:
    """The prefixes every zone is listed by from now on (until the patch is undone)."""
    listed: list[str] = []
    listing = LocalLake.list

    def watched(self, prefix, start_after=None):
        listed.append(prefix)
        return listing(self, prefix, start_after)

    monkeypatch.setattr(LocalLake, "list", watched)
    return listed


def _page_zones(pipeline) -> dict[str, tuple[int | None, int | None]]:
    ends = SimpleNamespace(raw=pipeline.raw, processed=pipeline.processed)
    with pipeline.warehouse().connect() as conn:
        lake = health.read(conn, ends).lake
    return {z.name: (z.objects, z.bytes) for z in lake.zones}


def test_the_page_sizes_the_zones_from_the_manifests_without_listing(pipeline, monkeypatch):
    assert pipeline.here("run-all").returncode == 0
    pipeline.activity()
    assert pipeline.here("run-all").returncode == 0
    listed = _listings(monkeypatch)
    shown = _page_zones(pipeline)
    assert "" not in listed  # only the manifests after the hint
    monkeypatch.undo()
    assert shown == {"raw": _committed(pipeline.raw), "processed": _committed(pipeline.processed)}


def test_a_zone_a_release_that_did_not_count_wrote_is_listed_once(pipeline, monkeypatch):
    """Manifests without a count (an earlier release's): the next run lists the zone
    once and counts on from what it found; the run after counts without listing."""
    assert pipeline.here("run-all").returncode == 0
    for zone in (pipeline.raw, pipeline.processed):
        key = manifests.manifest_key(manifests.latest_seq(zone))
        body = json.loads(zone.get(key))
        body.pop("held")
        (zone.root / key).write_text(json.dumps(body))
    assert _page_zones(pipeline) == {"raw": (None, None), "processed": (None, None)}
    pipeline.activity()
    listed = _listings(monkeypatch)
    assert pipeline.here("run-all").returncode == 0
    assert listed.count("") == 2  # each zone once
    listed.clear()
    pipeline.activity()
    assert pipeline.here("run-all").returncode == 0
    assert "" not in listed
    monkeypatch.undo()
    # counted from the listing, which also found the zone's identity and the hint
    shown = _page_zones(pipeline)
    for name, zone in (("raw", pipeline.raw), ("processed", pipeline.processed)):
        files, size = _committed(zone)
        hint, identity = (len(zone.get(k)) for k in (manifests.LATEST_HINT, "_zone.json"))
        assert shown[name] == (files + 2, size + hint + identity)


def test_the_page_sizes_a_compacted_zone_as_gc_leaves_it(pipeline, monkeypatch):
    """The records count the large files in and the small files out: once gc has deleted
    the small files, the page's figures are again what a listing finds."""
    import datetime as dt

    from totesys_cli.lake import compaction

    assert pipeline.here("run-all").returncode == 0
    pipeline.activity()
    assert pipeline.here("run-all").returncode == 0
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    assert pipeline.here("lake", "compact", "--before", tomorrow).returncode == 0
    assert pipeline.here("lake", "gc", "--grace-hours", "0").returncode == 0
    records = (compaction.COMPACTIONS,)
    read = []
    reading = LocalLake.get
    monkeypatch.setattr(LocalLake, "get", lambda self, key: read.append(key) or reading(self, key))
    shown = _page_zones(pipeline)
    monkeypatch.undo()
    # the hint carries the running total: no record, which names a day's every file, is read
    assert not [k for k in read if k.startswith(records) and k != compaction.LATEST_HINT]
    found = {}
    for name in ("raw", "processed"):
        zone = getattr(pipeline, name)
        counted = [o for o in zone.list("") if not o.key.startswith(NOT_COUNTED + records)]
        found[name] = (len(counted), sum(o.size for o in counted))
    assert shown == found
