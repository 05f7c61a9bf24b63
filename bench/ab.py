"""Two builds side by side on one machine: run-all (full and no-op) and the load alone,
alternating which goes first each round, on fresh warehouses, so that a noisy machine
moves both alike.

    python bench/ab.py --base /path/to/old-venv/bin/totesys [--rounds 3] [--keep DIR]

The other build is this environment's `totesys`. Install the base from git into a venv
of its own, e.g. `git worktree add ../base <commit>` and `pip install -e '../base[dev]'`:
with the same extras as this one, since a venv with fewer packages starts a process some
0.2 s sooner, which the no-op figure would show as the builds' difference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from common import TOTESYS, Server, timed

from totesys_cli.demo import generator


def _run_all(server: Server, source: str, exe: str) -> tuple[float, float, float]:
    warehouse = server.create("ab_warehouse")
    lake = str(Path(tempfile.mkdtemp(prefix="ab-")) / "lake")
    timed([exe, "init", "--warehouse-url", warehouse])
    env = {
        "TOTESYS_SOURCE_URL": source,
        "TOTESYS_WAREHOUSE_URL": warehouse,
        "TOTESYS_LAKE_URL": lake,
    }
    full, _, _, log = timed([exe, "--log-format", "json", "run-all"], env)
    load = json.loads(log.strip().splitlines()[-1])["load_seconds"]
    noop, _, _, _ = timed([exe, "--log-format", "json", "run-all"], env)
    return full, load, noop


def _load(server: Server, lake: str, exe: str) -> float:
    warehouse = server.create("ab_warehouse")
    timed([exe, "init", "--warehouse-url", warehouse])
    seconds, _, _, _ = timed([exe, "load", "--warehouse-url", warehouse, "--lake-url", lake])
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the other build's totesys executable")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="keep the server and its dataset here")
    args = parser.parse_args()
    server = Server(args.keep)
    source = server.source(generator.BENCHMARK)
    builds = {"base": args.base, "after": TOTESYS}
    lakes = {}  # for the load alone: each build's own (a processed zone's format is its writer's)
    for name, exe in builds.items():
        lakes[name] = str(Path(tempfile.mkdtemp(prefix="ab-")) / "lake")
        timed([exe, "extract", "--source-url", source, "--lake-url", lakes[name]])
        timed([exe, "transform", "--lake-url", lakes[name]])
    figures: dict[str, dict[str, list[float]]] = {b: {} for b in builds}
    for round_ in range(args.rounds):
        order = list(builds) if round_ % 2 == 0 else list(builds)[::-1]
        for name in order:
            full, in_run, noop = _run_all(server, source, builds[name])
            alone = _load(server, lakes[name], builds[name])
            for key, value in (
                ("run-all", full),
                ("its load", in_run),
                ("no-op", noop),
                ("load alone", alone),
            ):
                figures[name].setdefault(key, []).append(value)
            print(
                f"round {round_ + 1} {name}: run-all {full:.2f} s (load {in_run:.2f} s), "
                f"no-op {noop:.2f} s, load alone {alone:.2f} s",
                flush=True,
            )
    for key in figures["base"]:
        base, after = statistics.mean(figures["base"][key]), statistics.mean(figures["after"][key])
        change = (after / base - 1) * 100
        print(f"{key:>10}: base {base:6.2f} s, after {after:6.2f} s ({change:+.1f} %)")


if __name__ == "__main__":
    main()
