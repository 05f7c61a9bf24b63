"""A first load bigger than one run's deadline: how many bounded runs it takes to catch
up, each run's seconds, and their total against one unbounded run of the same source.

    python bench/backlog.py --keep /tmp/benchpg --scale 5 --max-runtime 60

The source is `--scale` times the benchmark dataset (built once and kept with --keep).
The bounded runs are `run-all --max-runtime N` until the `run succeeded` line says no
table is left and no run waits; the unbounded run is one `run-all` without a deadline
(TOTESYS_MAX_RUNTIME set very high) into a second warehouse and lake. Target: total
<= 1.3 x unbounded.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from common import HERE, TOTESYS, setup, timed

from totesys_cli.demo import generator

STEPS = ("extract", "transform", "load")
UNBOUNDED = "1000000"  # seconds: no range stops before the whole window is read


def _run(env: dict[str, str], max_runtime: str) -> tuple[float, dict]:
    seconds, _, _, log = timed(
        [TOTESYS, "--log-format", "json", "run-all", "--max-runtime", max_runtime], env
    )
    line = json.loads(log.strip().splitlines()[-1])
    assert line["message"] == "run succeeded", line
    return seconds, line


def main() -> None:
    args, sizes, server = setup(__doc__, scale=True)
    big = generator.Sizes(sizes.sales_orders * args.scale, sizes.purchase_orders * args.scale)
    source = server.source(big)
    work = Path(tempfile.mkdtemp(prefix="totesys-backlog-"))

    bounded_env = {
        "TOTESYS_SOURCE_URL": source,
        "TOTESYS_WAREHOUSE_URL": server.create("bench_backlog_bounded"),
        "TOTESYS_LAKE_URL": str(work / "bounded"),
    }
    timed([TOTESYS, "init", "--warehouse-url", bounded_env["TOTESYS_WAREHOUSE_URL"]])
    runs: list[tuple[float, dict]] = []
    while not runs or runs[-1][1]["tables_left"] or runs[-1][1]["runs_waiting"]:
        runs.append(_run(bounded_env, str(args.max_runtime)))
        seconds, line = runs[-1]
        steps = " ".join(f"{s} {line.get(f'{s}_seconds', 0):5.1f}" for s in STEPS)
        print(
            f"run {len(runs):3d}: {seconds:6.2f} s ({steps})  extracted {line['extracted']:>10,}"
            f"  loaded {line['loaded']:>10,}  tables left {line['tables_left']:2d}"
            f"  runs waiting {line['runs_waiting']}",
            flush=True,
        )
        if len(runs) > 500:
            raise SystemExit("the backlog does not drain")

    unbounded_env = {
        "TOTESYS_SOURCE_URL": source,
        "TOTESYS_WAREHOUSE_URL": server.create("bench_backlog_unbounded"),
        "TOTESYS_LAKE_URL": str(work / "unbounded"),
    }
    timed([TOTESYS, "init", "--warehouse-url", unbounded_env["TOTESYS_WAREHOUSE_URL"]])
    whole, line = _run(unbounded_env, UNBOUNDED)
    print(
        f"unbounded: {whole:.2f} s ("
        + " ".join(f"{s} {line[f'{s}_seconds']:.1f}" for s in STEPS)
        + f"), {line['extracted']:,} rows extracted",
        flush=True,
    )

    total = sum(seconds for seconds, _ in runs)
    longest = max(seconds for seconds, _ in runs)
    print(f"dataset: {big.sales_orders:,} sales orders ({args.scale} x the benchmark)")
    print(
        f"bounded: {len(runs)} runs of run-all --max-runtime {args.max_runtime:g}, "
        f"{total:.2f} s in all, the longest {longest:.2f} s"
    )
    print(f"unbounded: one run-all, {whole:.2f} s")
    print(f"bounded / unbounded {total / whole:6.2f}    (target <= 1.3)")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"backlog_{big.sales_orders}.json").write_text(
        json.dumps(
            {
                "sales_orders": big.sales_orders,
                "max_runtime": args.max_runtime,
                "runs": [round(s, 2) for s, _ in runs],
                "bounded_seconds": round(total, 2),
                "unbounded_seconds": round(whole, 2),
                "bounded_over_unbounded": round(total / whole, 3),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
