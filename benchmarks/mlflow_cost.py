"""What MLflow logging costs a study: metric rows in the store and seconds spent logging.

    .venv/bin/python benchmarks/mlflow_cost.py                  # runs the small study below
    .venv/bin/python benchmarks/mlflow_cost.py --workdir DIR    # counts a finished study

The small study is the default config shrunk to 24 cells (360 runs) of the full study's shape:
sigmoid and relu, depths 2, 8 and 32, no norm and batch norm, with and without residual
connections, the default 3 seeds, 5 learning rates, 50 epochs and probes. Prints the rows of
the store's tables, the sum over cells of ``mlflow_seconds`` (DONE.json: creating, logging and
finishing a cell's runs) and of ``image_seconds`` (drawing the runs' profile images) where the
cells record it, and the study's wall time. Run by hand, not by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SMALL = {
    "study": "mlflow-cost",
    "grid": {
        "activation": ["sigmoid", "relu"],
        "depth": [2, 8, 32],
        "norm": ["none", "batch"],
        "residual": [False, True],
    },
}
TABLES = ("runs", "metrics", "latest_metrics", "params", "tags", "inputs", "datasets")


def run_study(workdir: Path, cores: int) -> float:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "small.yaml").write_text(yaml.safe_dump(SMALL))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
           "--configfile", str(workdir / "small.yaml"), "--cores", str(cores)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, capture_output=True)
    return time.perf_counter() - t0


def count(workdir: Path) -> dict:
    results = workdir / "results"
    with sqlite3.connect(results / "mlflow.db") as db:
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        rows = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in TABLES if t in names}  # fmt: skip
    timings = [json.loads(p.read_text())["timing"] for p in results.glob("runs/*/DONE.json")]
    return {
        "cells": len(timings),
        "rows": rows,
        "mlflow_seconds": sum(t["mlflow_seconds"] for t in timings),
        "image_seconds": sum(t.get("image_seconds", 0.0) for t in timings),
        "fit_seconds": sum(t["fit_seconds"] for t in timings),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, help="a finished study to count (else run one)")
    p.add_argument("--cores", type=int, default=os.cpu_count())
    a = p.parse_args()
    out = {}
    if a.workdir is None or not (a.workdir / "results" / "mlflow.db").exists():
        workdir = a.workdir or Path(tempfile.mkdtemp(prefix="vanishing-mlflow-cost-"))
        out["wall_seconds"] = round(run_study(workdir, a.cores), 1)
        out["workdir"] = str(workdir)
    else:
        workdir = a.workdir
    out.update(count(workdir))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
