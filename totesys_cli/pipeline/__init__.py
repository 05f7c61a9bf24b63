"""Running the pipeline as the commands do: each step under the warehouse lock and the
deadline (`run`), what a run-all takes on in its time (`plan`), and where each piece of
state came from, checked before anything is touched (`lineage`)."""

from totesys_cli.pipeline.run import (
    RunAllResult,
    extract,
    lake_compact,
    lake_gc,
    load,
    rebuild,
    run_all,
    transform,
)

__all__ = [
    "RunAllResult",
    "extract",
    "lake_compact",
    "lake_gc",
    "load",
    "rebuild",
    "run_all",
    "transform",
]
