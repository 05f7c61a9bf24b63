"""Extract: what changed in the source, into the raw zone of the lake."""

from totesys_cli.extract.options import Deletes, ExtractOptions, ExtractResult, Room
from totesys_cli.extract.run import extract, unfinished

__all__ = ["Deletes", "ExtractOptions", "ExtractResult", "Room", "extract", "unfinished"]
