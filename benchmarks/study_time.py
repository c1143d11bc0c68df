"""Wall time of a whole study and the share of it spent outside training steps.

    .venv/bin/python benchmarks/study_time.py          # runs the default study in a temp dir
    .venv/bin/python benchmarks/study_time.py --workdir DIR --wall 812.3   # analyse a finished run

Reads every cell's DONE.json (fit, probe and evaluation seconds) and every training job's
manifest (import and process seconds). "Training steps" is the time inside ``trainer.fit`` minus
probes and per-epoch evaluation; everything else (process start, imports, data, MLflow, Snakemake,
statistics, figures, idle cores) is outside. Shares are of the machine's capacity, cores x wall.
Run by hand, not by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_study(workdir: Path, cores: int, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--cores", str(cores), *extra]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - t0


def analyse(workdir: Path, wall: float, cores: int) -> None:
    results = workdir / "results"
    cells = [json.loads(p.read_text())["timing"] for p in results.glob("runs/*/DONE.json")]
    jobs = [json.loads(p.read_text()) for p in results.glob("jobs/*.json")]
    fit = sum(c["fit_seconds"] for c in cells)
    probes = sum(c["probe_seconds"] for c in cells)
    evals = sum(c["eval_seconds"] for c in cells)
    mlflow = sum(c["mlflow_seconds"] for c in cells)
    steps = fit - probes - evals
    imports = sum(j["import_seconds"] for j in jobs)
    process = sum(j["process_seconds"] for j in jobs)
    capacity = cores * wall
    print(f"study wall time            : {wall:8.1f} s ({wall / 60:.1f} min) on {cores} cores, "
          f"{len(cells)} cells in {len(jobs)} training jobs")  # fmt: skip
    print(f"training steps (core-s)    : {steps:8.1f}  = {steps / capacity:6.1%} of capacity")
    print(f"probes + evaluation        : {probes + evals:8.1f}  = "
          f"{(probes + evals) / capacity:6.1%}")  # fmt: skip
    print(f"imports in training jobs   : {imports:8.1f}  = {imports / capacity:6.1%}")
    print(f"MLflow logging             : {mlflow:8.1f}  = {mlflow / capacity:6.1%}")
    print(f"rest of training processes : {process - fit - imports - mlflow:8.1f}")
    print(f"outside training steps     : {1 - steps / capacity:6.1%} "
          f"(outside fit, i.e. counting probes and evaluation as training: "
          f"{1 - fit / capacity:.1%})")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, help="a finished study to analyse (else run one)")
    p.add_argument("--wall", type=float, help="its wall time in seconds")
    p.add_argument("--cores", type=int, default=os.cpu_count())
    p.add_argument("snakemake_args", nargs="*", help="extra snakemake arguments, after --")
    a = p.parse_args()
    if a.workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="vanishing-study-"))
        wall = run_study(workdir, a.cores, a.snakemake_args)
        print(f"study in {workdir}")
    else:
        workdir, wall = a.workdir, a.wall
    analyse(workdir, wall, a.cores)


if __name__ == "__main__":
    main()
