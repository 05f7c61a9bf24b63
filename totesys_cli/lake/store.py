"""The lake's object store: one small API over S3 and a local folder.

Objects are written whole (readers never see half of one), and `put_new` creates an
object only if absent (S3 `If-None-Match: *`, an atomic exclusive link locally): the
commit of a run and the write of a data file both rest on it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from totesys_cli.errors import ConfigError, RuntimeFailure


class MissingFile(RuntimeFailure):
    """The object asked for is not in the zone."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: dt.datetime  # UTC, naive


class Lake(Protocol):
    """One zone of the lake (raw or processed), addressed by relative keys."""

    url: str

    def check(self, create: bool = True) -> None:
        """Fail now, with a clear line, if the zone cannot be read and written; a zone
        that does not exist yet is created only by a step that writes it (`create`)."""

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

    def check(self, create: bool = True) -> None:
        if not create and not self.root.is_dir():
            raise ConfigError(
                f"the lake folder {self.root} does not exist",
                f"Check {self.envvar}: only extract and run-all create a zone",
            )
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
            raise MissingFile(
                f"the lake file {self.url}/{key} is missing", "The lake was changed by hand"
            ) from None

    def list(self, prefix: str, start_after: str | None = None) -> list[StoredObject]:
        base = self._path(prefix)
        if not base.exists():
            return []
        found = []
        walked = [(base.parent, [], [base.name])] if base.is_file() else os.walk(base)
        for folder, _, files in walked:
            # keys as strings, and no stat before start_after: a listing after the newest
            # manifest costs the folder's names, not a path and a stat each
            inside = Path(folder).relative_to(self.root).as_posix()
            above = "" if inside == "." else f"{inside}/"
            for name in files:
                key = above + name
                if start_after is not None and key <= start_after:
                    continue
                stat = os.stat(os.path.join(folder, name))
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
        from totesys_cli.config import aws

        self.client = aws.client("s3")

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

    def check(self, create: bool = True) -> None:
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
                    raise MissingFile(
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
