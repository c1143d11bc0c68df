"""What MLflow logging costs a study: metric rows in the store and seconds spent logging.

    .venv/bin/python benchmarks/mlflow_cost.py                  # runs the small study below
    .venv/bin/python benchmarks/mlflow_cost.py --workdir DIR    # counts a finished study
    .venv/bin/python benchmarks/mlflow_cost.py --replay DIR     # logging alone, before vs now

The small study is the default config shrunk to 24 cells (360 runs) of the full study's shape:
sigmoid and relu, depths 2, 8 and 32, no norm and batch norm, with and without residual
connections, the default 3 seeds, 5 learning rates, 50 epochs and probes. Prints the rows of
the store's tables, the sum over cells of ``mlflow_seconds`` (DONE.json: creating, logging and
finishing a cell's runs) and of ``image_seconds`` (drawing the runs' profile images) where the
cells record it, and the study's wall time. Run by hand, not by the test suite.

``--replay DIR`` separates MLflow's cost from the machine's load (a study's seconds vary with
whatever else runs): it logs the finished study's cells again, from their tables, into fresh
SQLite stores in this one process, alternating the way runs were logged before this module
existed (a flat child run per replica with 3 quantities x depth layers x probes as metric keys)
and the way they are logged now (``CellRuns``: a cell run, replicas nested under it, 18 keys,
dataset inputs, the profile image and per-layer table as artifacts), and prints seconds and
metric rows of each, the image drawing timed apart.
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


def log_before(client, exp_id: str, parent: str, cell: str, runs, layers, curves) -> None:
    """One cell as it was logged before: flat child runs, a metric key per quantity and layer."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    for _, run in runs.iterrows():
        tags = {
            "cell": cell,
            "mlflow.parentRunId": parent,
            "lr": str(run["lr"]),
            "seed": str(run["seed"]),
        }
        rid = client.create_run(
            exp_id, run_name=f"{cell}/lr~{run['lr']}/seed~{run['seed']}", tags=tags
        ).info.run_id
        mine = layers[(layers["lr"] == run["lr"]) & (layers["seed"] == run["seed"])]
        cur = curves[(curves["lr"] == run["lr"]) & (curves["seed"] == run["seed"])]
        width = max(2, len(str(int(run["depth"]))))
        m = [
            Metric(f"{q}/layer_{int(r.layer):0{width}d}", float(getattr(r, q)), now, int(r.step))
            for q in ("grad_preact_rms", "grad_weight_norm", "saturation")
            for r in mine.itertuples()
            if getattr(r, q) == getattr(r, q)
        ]
        m += [
            Metric("train/loss", float(v), now, int(st))
            for v, st in zip(cur["train_loss"], cur["step"], strict=True)
            if v == v
        ]
        m += [
            Metric("val/accuracy", float(v), now, int(st))
            for v, st in zip(cur["val_accuracy"], cur["step"], strict=True)
            if v == v
        ]
        last = int(cur["step"].max()) if len(cur) else 0
        finals = {
            "train/final_loss": "final_train_loss",
            "val/final_accuracy": "final_val_accuracy",
            "val/best_accuracy": "best_val_accuracy",
            "test/accuracy": "final_test_accuracy",
            "grad_ratio_init": "grad_ratio_init",
            "diverged": "diverged",
        }
        m += [Metric(k, float(run[c]), now, last) for k, c in finals.items() if run[c] == run[c]]
        params = [Param(k, str(run[k])) for k in list(runs.columns)[:40]]
        for i in range(0, max(len(m), 1), 1000):
            client.log_batch(
                rid, metrics=m[i : i + 1000], params=params if i == 0 else [], synchronous=True
            )
        client.set_terminated(rid, "FINISHED")


def log_now(tracking: dict, cell: str, runs, layers, curves, datasets, image) -> float:
    """One cell as it is logged now (the runner's own steps); returns the image seconds."""
    from vanishing.tracking import pages
    from vanishing.tracking.store import CellRuns
    from vanishing.training.runner import log_replica, profile_title

    cr = CellRuns(tracking, "0" * 40, datasets)
    settings = [
        {
            "lr": r["lr"],
            "seed": int(r["seed"]),
            "activation": r["activation"],
            "depth": int(r["depth"]),
        }
        for _, r in runs.iterrows()
    ]
    ids = cr.start(cell, settings, {k: str(runs.iloc[0][k]) for k in list(runs.columns)[:30]})
    sel = [(layers["lr"] == r["lr"]) & (layers["seed"] == r["seed"]) for _, r in runs.iterrows()]
    with tempfile.TemporaryDirectory() as tmp:
        folders = [Path(tmp) / str(i) for i in range(len(ids))]
        for f in folders:
            f.mkdir()
        t0 = time.perf_counter()
        image.draw_cell(
            [
                (layers[s], profile_title(runs.iloc[i]), folders[i] / pages.PROFILE_IMAGE)
                for i, s in enumerate(sel)
            ]
        )
        image_seconds = time.perf_counter() - t0
        for i, rid in enumerate(ids):
            r = runs.iloc[i]
            cur = curves[(curves["lr"] == r["lr"]) & (curves["seed"] == r["seed"])]
            log_replica(cr, rid, r, layers[sel[i]], cur, folders[i])
    cr.finish(cr.cell_run_id)
    return image_seconds


def replay(workdir: Path, rounds: int) -> dict:
    """Log ``workdir``'s cells again, before and now, into fresh stores (see the docstring)."""
    import pandas as pd

    from vanishing.tracking import pages
    from vanishing.tracking.provenance import provenance
    from vanishing.tracking.store import MlflowClient, init_study

    results = workdir / "results"
    cells = sorted(p.parent for p in results.glob("runs/*/DONE.json"))
    datasets = json.loads((cells[0] / "DONE.json").read_text()).get("datasets", [])
    tables = [
        (c.name, *(pd.read_csv(c / f"{t}.csv") for t in ("runs", "layer_gradients", "curves")))
        for c in cells
    ]
    image = pages.ProfileImage()
    out = {"before": [], "now": [], "image_now": []}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(rounds):
            for variant in ("before", "now"):
                uri = f"sqlite:///{tmp}/{variant}-{k}.db"
                tracking = init_study(uri, "replay", provenance())  # migrations: not timed
                client = MlflowClient(tracking_uri=uri)
                t0, image_seconds = time.perf_counter(), 0.0
                for cell, runs, layers, curves in tables:
                    if variant == "before":
                        log_before(
                            client,
                            tracking["experiment_id"],
                            tracking["parent_run_id"],
                            cell,
                            runs,
                            layers,
                            curves,
                        )
                    else:
                        image_seconds += log_now(
                            tracking, cell, runs, layers, curves, datasets, image
                        )
                out[variant].append(time.perf_counter() - t0 - image_seconds)
                if variant == "now":
                    out["image_now"].append(image_seconds)
                with sqlite3.connect(f"{tmp}/{variant}-{k}.db") as db:
                    (rows,) = db.execute("SELECT count(*) FROM metrics").fetchone()
                out[f"rows_{variant}"] = rows
    n_runs = sum(len(t[1]) for t in tables)
    return {
        "cells": len(tables),
        "replica_runs": n_runs,
        "rounds": rounds,
        "metric_rows_before": out["rows_before"],
        "metric_rows_now": out["rows_now"],
        "mlflow_seconds_before": [round(x, 1) for x in out["before"]],
        "mlflow_seconds_now": [round(x, 1) for x in out["now"]],
        "image_seconds_now": [round(x, 1) for x in out["image_now"]],
        "image_ms_per_replica": round(1000 * min(out["image_now"]) / n_runs, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, help="a finished study to count (else run one)")
    p.add_argument("--cores", type=int, default=os.cpu_count())
    p.add_argument("--replay", type=Path, metavar="DIR", help="a finished study to log again")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    if a.replay:
        print(json.dumps(replay(a.replay, a.rounds), indent=2))
        return
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
