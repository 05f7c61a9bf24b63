"""Load: every processed run not yet loaded, into the warehouse, exactly once."""

from totesys_cli.load.run import (
    LoadOptions,
    LoadResult,
    check_ready,
    last_loaded,
    load,
    rebuild,
)

__all__ = ["LoadOptions", "LoadResult", "check_ready", "last_loaded", "load", "rebuild"]
