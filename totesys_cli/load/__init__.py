"""Load: every processed run not yet loaded, into the warehouse, exactly once."""

from totesys_cli.load.run import LoadOptions, LoadResult, load, rebuild

__all__ = ["LoadOptions", "LoadResult", "load", "rebuild"]
