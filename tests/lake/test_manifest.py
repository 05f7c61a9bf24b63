"""Manifests, the commit of every run: a run number is committed once, by whoever
creates its manifest first; readers find the newest past a stale hint; and one
run reads each manifest at most once (a committed manifest never changes), so the plan,
the transform and the load share what the first of them read."""

from __future__ import annotations

import pytest

from totesys_cli.errors import RuntimeFailure
from totesys_cli.lake import manifest as manifests
from totesys_cli.lake import open_lake
from totesys_cli.lake.manifest import RawManifest


class Counting:
    """A zone that counts its reads of each key."""

    def __init__(self, zone):
        self.zone, self.url, self.reads = zone, zone.url, {}

    def get(self, key: str) -> bytes:
        self.reads[key] = self.reads.get(key, 0) + 1
        return self.zone.get(key)

    def __getattr__(self, name: str):
        return getattr(self.zone, name)


@pytest.fixture
def zone(tmp_path):
    return open_lake(str(tmp_path / "raw"), "TOTESYS_RAW_URL")


def _run(seq: int, run_id: str = "r") -> RawManifest:
    return RawManifest(seq=seq, run_id=f"{run_id}{seq}", tables={})


def test_a_run_number_is_committed_once_and_the_loser_removes_its_files(zone):
    zone.put("sales_order/mine.parquet", b"data")
    manifests.commit(zone, _run(1, "first"), [], "extract")
    with pytest.raises(RuntimeFailure, match="another extract committed run 1 first"):
        manifests.commit(zone, _run(1, "second"), ["sales_order/mine.parquet"], "extract")
    assert zone.list("sales_order/") == []
    fresh = open_lake(zone.url, "TOTESYS_RAW_URL")
    assert manifests.read(fresh, manifests.manifest_key(1), RawManifest).run_id == "first1"


def test_the_newest_run_is_found_past_a_stale_hint(zone):
    for seq in (1, 2, 3):
        manifests.commit(zone, _run(seq), [], "extract")
    zone.put(manifests.LATEST_HINT, b"1")  # a commit whose hint did not move
    assert manifests.latest_seq(zone) == 3
    assert manifests.latest(zone, RawManifest).seq == 3
    assert [m.seq for m in manifests.runs_after(zone, 1, RawManifest)] == [2, 3]


def test_a_run_reads_each_manifest_once_and_never_one_it_committed(zone):
    writer = Counting(zone)
    with manifests.one_run():
        manifests.commit(writer, _run(1), [], "extract")
        manifests.commit(writer, _run(2), [], "extract")
        assert manifests.latest(writer, RawManifest).seq == 2
        assert [m.seq for m in manifests.runs_after(writer, 0, RawManifest)] == [1, 2]
    assert {k: n for k, n in writer.reads.items() if k.endswith(".json")} == {}

    reader = Counting(open_lake(zone.url, "TOTESYS_RAW_URL"))  # the next run
    with manifests.one_run():
        for _ in range(3):
            found = manifests.runs_after(reader, 0, RawManifest)
            assert [m.run_id for m in found] == ["r1", "r2"]
            assert manifests.latest(reader, RawManifest).seq == 2
    keys = [manifests.manifest_key(1), manifests.manifest_key(2)]
    assert {k: reader.reads.get(k) for k in keys} == dict.fromkeys(keys, 1)


def test_outside_a_run_a_reader_keeps_nothing_and_sees_a_restored_lake(zone):
    """A long-lived reader (the dashboard) keeps no manifest, so what it holds does not
    grow with the lake, and a manifest restored from a copy is read as it now is."""
    manifests.commit(zone, _run(1, "first"), [], "extract")
    reader = Counting(zone)
    key = manifests.manifest_key(1)
    assert manifests.read(reader, key, RawManifest).run_id == "first1"
    zone.put(key, manifests.encode(_run(1, "restored")))
    assert manifests.read(reader, key, RawManifest).run_id == "restored1"
    assert reader.reads[key] == 2


def test_what_a_committed_manifest_says_is_what_a_reader_finds(zone):
    """The manifest a zone keeps for what it committed is the one its JSON gives."""
    written = _run(1)
    manifests.commit(zone, written, [], "extract")
    kept = manifests.read(zone, manifests.manifest_key(1), RawManifest)
    fresh = open_lake(zone.url, "TOTESYS_RAW_URL")
    assert kept == manifests.read(fresh, manifests.manifest_key(1), RawManifest)
