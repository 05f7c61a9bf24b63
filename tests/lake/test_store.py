"""The object store every commit rests on, as a folder and on S3 (moto): objects are
written whole, `put_new` creates an object only if absent, listings run in key order
from where they are asked to start, and a missing object is one clear line."""

from __future__ import annotations

import threading

import boto3
import pytest

from totesys_cli.errors import RuntimeFailure
from totesys_cli.lake import open_lake


@pytest.fixture(params=["folder", "s3"])
def zone(request, tmp_path):
    if request.param == "folder":
        return open_lake(str(tmp_path / "zone"), "TOTESYS_LAKE_URL")
    request.getfixturevalue("moto_endpoint")
    boto3.client("s3").create_bucket(
        Bucket="lake", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
    )
    return open_lake("s3://lake/zone", "TOTESYS_LAKE_URL")


def test_put_new_creates_once_and_never_overwrites(zone):
    assert zone.put_new("_manifests/0000000001.json", b"first")
    assert not zone.put_new("_manifests/0000000001.json", b"second")
    assert zone.get("_manifests/0000000001.json") == b"first"


def test_of_racing_creators_exactly_one_wins(zone):
    """Eight threads create one key at once, as runs racing for one run number do."""
    wins, start = [], threading.Barrier(8)

    def create(n: int) -> None:
        start.wait()
        if zone.put_new("_manifests/0000000007.json", str(n).encode()):
            wins.append(n)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert zone.get("_manifests/0000000007.json") == str(wins[0]).encode()


def test_listings_are_in_key_order_and_start_after_a_key(zone):
    for n in (3, 1, 2, 10):
        zone.put(f"_manifests/{n:010d}.json", b"{}")
    zone.put("other/x", b"")
    names = [o.key.rsplit("/", 1)[1] for o in zone.list("_manifests/")]
    assert names == [f"{n:010d}.json" for n in (1, 2, 3, 10)]
    after = zone.list("_manifests/", start_after="_manifests/0000000002.json")
    assert [o.key.rsplit("/", 1)[1] for o in after] == [f"{n:010d}.json" for n in (3, 10)]
    assert all(o.size == 2 for o in after)


def test_a_missing_object_is_one_line_naming_it(zone):
    zone.put("a", b"x")
    with pytest.raises(RuntimeFailure, match=r"the lake file .*/b is missing"):
        zone.get("b")


def test_deleted_objects_are_gone_and_deleting_again_is_harmless(zone):
    zone.put("t/1.parquet", b"1")
    zone.put("t/2.parquet", b"2")
    zone.delete(["t/1.parquet"])
    zone.delete(["t/1.parquet"])
    assert [o.key.rsplit("/", 1)[1] for o in zone.list("t/")] == ["2.parquet"]
