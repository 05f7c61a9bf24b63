"""The data lake: one small API over S3 and a local folder.

Data files are written whole under keys no other run uses, and are never overwritten.
Manifests are the commit: each is created only if absent (S3 `If-None-Match: *`, an
atomic exclusive link locally), so two racing runs can never both commit one slot.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from totesys_cli.errors import ConfigError, RuntimeFailure

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
MANIFESTS = "_manifests"
LATEST_HINT = f"{MANIFESTS}/_latest"


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: dt.datetime  # UTC, naive


class Lake(Protocol):
    """One zone of the lake (raw or processed), addressed by relative keys."""

    url: str

    def check(self) -> None:
        """Fail now, with a clear line, if the zone cannot be read and written."""

    def put(self, key: str, data: bytes) -> None:
        """Write a whole object; readers never see it half-written."""

    def put_new(self, key: str, data: bytes) -> bool:
        """Create the object only if absent; False if it already existed."""

    def get(self, key: str) -> bytes: ...

    def list(self, prefix: str, start_after: str | None = None) -> list[StoredObject]:
        """Objects under prefix in key order, only those after start_after when given."""

    def delete(self, keys: list[str]) -> None: ...


def open_lake(url: str, envvar: str) -> Lake:
    if url.startswith("s3://"):
        return S3Lake(url, envvar)
    if "://" in url and not url.startswith("file://"):
        raise ConfigError(
            f"the lake URL {url!r} is neither s3://bucket/prefix nor a folder", f"Check {envvar}"
        )
    return LocalLake(url.removeprefix("file://"), envvar)


# ---------------------------------------------------------------- local folder


class LocalLake:
    def __init__(self, path: str, envvar: str):
        self.root = Path(path).expanduser().resolve()
        self.url = str(self.root)
        self.envvar = envvar

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".check-"):
                pass
        except OSError as err:
            raise ConfigError(
                f"cannot write to the lake folder {self.root}: {err.strerror}",
                f"Check {self.envvar} and the folder's permissions",
            ) from None

    def _path(self, key: str) -> Path:
        return self.root / key

    def _write_temp(self, key: str, data: bytes) -> Path:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        return Path(temp)

    def put(self, key: str, data: bytes) -> None:
        os.replace(self._write_temp(key, data), self._path(key))

    def put_new(self, key: str, data: bytes) -> bool:
        temp = self._write_temp(key, data)
        try:
            os.link(temp, self._path(key))  # atomic, and fails if the key exists
        except FileExistsError:
            return False
        finally:
            temp.unlink()
        return True

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise RuntimeFailure(
                f"the lake file {self.url}/{key} is missing", "The lake was changed by hand"
            ) from None

    def list(self, prefix: str, start_after: str | None = None) -> list[StoredObject]:
        base = self._path(prefix)
        if not base.exists():
            return []
        found = []
        for folder, _, files in os.walk(base):
            for name in files:
                path = Path(folder) / name
                key = path.relative_to(self.root).as_posix()
                if start_after is not None and key <= start_after:
                    continue
                stat = path.stat()
                modified = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC).replace(tzinfo=None)
                found.append(StoredObject(key, stat.st_size, modified))
        return sorted(found, key=lambda o: o.key)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()


# ---------------------------------------------------------------- S3


def _code(err: Exception) -> str:
    return str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))


class S3Lake:
    """S3 (or any S3-compatible store: boto3 honours AWS_ENDPOINT_URL)."""

    def __init__(self, url: str, envvar: str):
        parsed = urlparse(url)
        if not parsed.netloc:
            raise ConfigError(f"the lake URL {url!r} names no bucket", f"Check {envvar}")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.url = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.envvar = envvar
        import boto3

        from totesys_cli.settings import aws_config

        self.client = boto3.client("s3", config=aws_config())

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as err:
            code = _code(err)
            if code in ("NoSuchBucket", "AccessDenied", "403", "AllAccessDisabled"):
                problem = "does not exist" if code == "NoSuchBucket" else "is not accessible"
                raise ConfigError(
                    f"the lake bucket {self.bucket} {problem} ({code}) while trying to {action}",
                    f"Check {self.envvar} and the role's S3 permissions",
                ) from None
            raise RuntimeFailure(f"S3 failed to {action} in {self.url}: {err}") from None
        except BotoCoreError as err:
            raise RuntimeFailure(
                f"cannot reach S3 to {action} in {self.url}: {err}",
                "Check the network, the region and AWS_ENDPOINT_URL",
            ) from None

    def check(self) -> None:
        with self._errors("list objects"):
            self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._key(""), MaxKeys=1)

    def put(self, key: str, data: bytes) -> None:
        with self._errors(f"write {key}"):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_new(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        with self._errors(f"create {key}"):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*"
                )
            except ClientError as err:
                if _code(err) in ("PreconditionFailed", "ConditionalRequestConflict"):
                    return False
                raise
        return True

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        with self._errors(f"read {key}"):
            try:
                return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
            except ClientError as err:
                if _code(err) in ("NoSuchKey", "404"):
                    raise RuntimeFailure(
                        f"the lake file {self.url}/{key} is missing",
                        "The lake was changed by hand",
                    ) from None
                raise

    def list(self, prefix: str, start_after: str | None = None) -> list[StoredObject]:
        found = []
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._key(prefix)}
        if start_after is not None:
            kwargs["StartAfter"] = self._key(start_after)
        skip = len(self._key(""))
        with self._errors(f"list {prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(**kwargs):
                for item in page.get("Contents", []):
                    modified = item["LastModified"].astimezone(dt.UTC).replace(tzinfo=None)
                    found.append(StoredObject(item["Key"][skip:], item["Size"], modified))
        return found

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            with self._errors("delete objects"):
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})


# ---------------------------------------------------------------- manifests


def put_data(lake: Lake, key: str, data: bytes) -> None:
    """Data files are never overwritten: their names are unique to a run, and the create
    is exclusive all the same."""
    if not lake.put_new(key, data):
        raise RuntimeFailure(
            f"the lake file {lake.url}/{key} already exists",
            "Another run used this run's id; run again",
        )


def manifest_key(seq: int) -> str:
    return f"{MANIFESTS}/{seq:010d}.json"


def encode_manifest(manifest: dict[str, Any]) -> bytes:
    return json.dumps({"format": MANIFEST_FORMAT, **manifest}, indent=1, default=str).encode()


def decode_manifest(lake: Lake, key: str) -> dict[str, Any]:
    raw = lake.get(key)
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise RuntimeFailure(
            f"the manifest {lake.url}/{key} is not valid JSON", "The lake was changed by hand"
        ) from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise RuntimeFailure(
            f"the manifest {lake.url}/{key} has format {manifest.get('format')!r}; "
            f"this totesys reads format {MANIFEST_FORMAT}",
            "Upgrade totesys",
        )
    return manifest


def manifests_after(lake: Lake, seq: int) -> list[tuple[int, str]]:
    """Committed manifests with a sequence number above `seq`, oldest first.

    Listing starts after `seq`'s key, so the cost follows the number of new runs,
    not the age of the lake.
    """
    start = manifest_key(seq) if seq > 0 else None
    found = []
    for item in lake.list(f"{MANIFESTS}/", start_after=start):
        name = item.key.rsplit("/", 1)[1]
        if name.endswith(".json") and name[:-5].isdigit():
            found.append((int(name[:-5]), item.key))
    return sorted(found)


def latest_manifest(lake: Lake) -> tuple[int, dict[str, Any] | None]:
    """The newest committed manifest: start from the hint, then look past it."""
    hint = 0
    with contextlib.suppress(RuntimeFailure, ValueError):
        hint = int(lake.get(LATEST_HINT).decode())
    newer = manifests_after(lake, hint)
    seq = newer[-1][0] if newer else hint
    return seq, (decode_manifest(lake, manifest_key(seq)) if seq else None)


def commit_run(
    lake: Lake, seq: int, manifest: dict[str, Any], written: list[str], step: str
) -> None:
    """Commit a run's manifest; a run that lost the race for its number removes its files
    (nothing would ever read them) and fails cleanly."""
    if lake.put_new(manifest_key(seq), encode_manifest({"seq": seq, **manifest})):
        try:
            lake.put(LATEST_HINT, str(seq).encode())
        except Exception as err:  # readers list past a stale hint
            log.warning("committed run %d but could not move the hint to it: %s", seq, err)
        return
    lake.delete(written)
    raise RuntimeFailure(
        f"another {step} committed run {seq} first, so this run's files were not committed "
        "and are removed",
        f"Run {step} again: it continues from the committed run",
    )


@contextlib.contextmanager
def removed_on_failure(lake: Lake) -> Iterator[list[str]]:
    """Collects the keys a run writes; if the run fails before its commit, they are
    deleted (a killed run leaves them for lake gc)."""
    written: list[str] = []
    try:
        yield written
    except BaseException:
        with contextlib.suppress(Exception):
            lake.delete(written)
        raise


def read_parquet(lake: Lake, keys: list[str], schema=None):
    """The files as one Arrow table; a missing or corrupt file fails naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for key in keys:
        data = lake.get(key)
        try:
            table = pq.read_table(pa.BufferReader(data))
        except (pa.ArrowException, OSError) as err:
            raise RuntimeFailure(
                f"the lake file {lake.url}/{key} is not readable Parquet: {err}",
                "Restore it from the bucket's versions, or remove its run and re-extract",
            ) from None
        if schema is not None:
            try:
                table = table.select(schema.names).cast(schema)
            except (pa.ArrowException, KeyError) as err:
                raise RuntimeFailure(
                    f"the lake file {lake.url}/{key} does not have the expected columns: {err}",
                    "Remove its run and re-extract",
                ) from None
        tables.append(table)
    if not tables:
        return schema.empty_table() if schema is not None else pa.table({})
    return pa.concat_tables(tables)
