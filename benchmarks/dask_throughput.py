"""Grading throughput on this machine: local worker processes vs a Dask cluster, same class, same grades.

Builds N synthetic learner submissions of one lesson (``autograde_throughput.py``'s mix: full marks,
partial credit, failing and crashing code) in identical temporary course directories and grades them:

1. ``convcourse grade <lesson> --workers W`` (W local worker processes, each starting its fork server);
2. ``convcourse grade <lesson> --scheduler tcp://127.0.0.1:PORT`` on a Dask cluster started here
   (``dask scheduler`` and W ``dask worker --nworkers 1 --nthreads 1`` processes on 127.0.0.1); each
   worker's grading process and fork server start with its first learner, as in a first run on a cluster;
3. the same again with ``--force`` (the Dask workers' fork servers are warm now, as for every run after
   the first on a long-lived cluster).

It checks that every learner's per-cell scores are identical in the three gradebooks and prints
notebooks/minute for each and the ratios to local grading, with the load average before and after (the
figures are only comparable on an otherwise idle machine). Starting the cluster is timed separately.

    .venv/bin/python benchmarks/dask_throughput.py                      # 8 learners of lesson 01, 2 workers
    .venv/bin/python benchmarks/dask_throughput.py -n 16 --workers 2 --lesson 04_stride
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from autograde_throughput import KINDS, make_course, scores, synthetic  # noqa: E402
from dask_cluster import LocalDaskCluster  # noqa: E402

from convcourse.grading import ensure_tools_on_path  # noqa: E402
from convcourse.instructor.autograde import default_workers  # noqa: E402


def grade(root: Path, lesson: str, *options: str) -> float:
    """Wall seconds of one ``convcourse grade`` run (which must grade everyone)."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "convcourse.cli", "--course", str(root), "grade", lesson, "--no-progress", *options],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"convcourse grade {' '.join(options)} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--learners", type=int, default=8)
    parser.add_argument("--workers", type=int, default=default_workers(), help="local workers = Dask workers")
    parser.add_argument("--lesson", default="01_sliding_window")
    args = parser.parse_args(argv)
    ensure_tools_on_path()
    lesson, n, w = args.lesson, args.learners, args.workers
    learners = {f"learner{i:03d}": synthetic(lesson, KINDS[i % len(KINDS)]) for i in range(n)}
    with tempfile.TemporaryDirectory(prefix="dask-bench-") as tmp:
        local_course, dask_course = (make_course(Path(tmp) / name, lesson, learners) for name in ("local", "dask"))
        print(
            f"{n} learners of {lesson} ({', '.join(KINDS)} in turn); {w} workers; {os.cpu_count()} CPU cores; "
            f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
            flush=True,
        )
        rows = [(f"local: convcourse grade --workers {w}", grade(local_course, lesson, "--workers", str(w)))]
        expected = scores(local_course, lesson)
        started = time.perf_counter()
        cluster = LocalDaskCluster(Path(tmp) / "cluster")
        try:
            cluster.wait_for([cluster.add_worker(f"w{i}") for i in range(w)])
            print(f"Dask cluster (scheduler + {w} workers) up in {time.perf_counter() - started:.1f} s (not counted)")
            rows.append(("Dask: --scheduler, first run", grade(dask_course, lesson, "--scheduler", cluster.address)))
            first = scores(dask_course, lesson)
            rows.append(
                (
                    "Dask: same, --force (workers warm)",
                    grade(dask_course, lesson, "--scheduler", cluster.address, "--force"),
                )
            )
            second = scores(dask_course, lesson)
        finally:
            cluster.stop()
        local_wall = rows[0][1]
        for label, wall in rows:
            print(f"{label:40s} {wall:7.1f} s  {60 * n / wall:6.1f} notebooks/minute  {local_wall / wall:5.2f}x local")
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        identical = first == expected and second == expected
        totals = sorted({round(sum(v or 0 for v in cells.values()), 3) for cells in expected.values()})
        print(f"grades identical: {identical} (distinct totals: {totals})")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
