"""Extract: what changed in the source, into the raw zone of the lake."""

from totesys_cli.extract.run import ExtractOptions, ExtractResult, Room, extract, unfinished

__all__ = ["ExtractOptions", "ExtractResult", "Room", "extract", "unfinished"]
