"""The data lake: an object store (S3 or a folder), its data files and its manifests."""

from totesys_cli.lake.store import Lake, StoredObject, open_lake

__all__ = ["Lake", "StoredObject", "open_lake"]
