"""One training job: its cells one after another, each written to ``<out>/<cell>/`` when done.

A cell's folder is complete when it holds ``DONE.json``; a rerun skips complete cells whose
settings are unchanged and trains the others, so a job that stopped half-way continues where it
stopped (these folders are not Snakemake outputs, which Snakemake deletes when a job fails).
A cell that raises does not stop the job: the others still train, and the job fails at the end
naming the failed cells.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vanishing.config import Cell, DataConfig, run_settings
from vanishing.outputs import CELL_TABLES, DONE
from vanishing.tracking.provenance import provenance
from vanishing.tracking.store import CellRuns
from vanishing.training.data import Splits, load_splits
from vanishing.training.probes import GRADIENTS, QUANTITIES

log = logging.getLogger(__name__)


@functools.cache
def cached_splits(data: DataConfig, probe_size: int) -> Splits:
    """The split data, made once per process (every cell of a job shares it)."""
    return load_splits(data, probe_size)


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def is_done(cell_dir: Path, cell: Cell) -> bool:
    """The cell's folder holds DONE.json for these settings and every table of a cell."""
    marker = cell_dir / DONE
    if not marker.exists() or not all((cell_dir / f"{t}.csv").exists() for t in CELL_TABLES):
        return False
    return json.loads(marker.read_text()).get("spec_hash") == spec_hash(cell.spec())


def cell_tables(cell: Cell, splits: Splits, module, fit_seconds: float):
    """runs, layer_gradients and curves rows of one trained cell (see docs/outputs.md)."""
    hist = module.history
    settings = [{**s, "cell": cell.name} for s in run_settings(cell)]
    init_rms = hist.probes[0][1]["grad_preact_rms"]  # (R, depth), step 0
    runs, layers, curve_rows = [], [], []
    for r, s in enumerate(settings):
        runs.append(
            {
                **s,
                "init_scheme": cell.model.init_scheme,
                "input_dim": splits.input_dim,
                "n_classes": splits.n_classes,
                "input_second_moment": splits.input_second_moment,
                **{k: float(v[r]) for k, v in hist.final.items()},
                "diverged": hist.diverged_step[r] is not None,
                "diverged_step": hist.diverged_step[r],
                "grad_ratio_init": float(init_rms[r, 0] / init_rms[r, -1]),
                "train_seconds": fit_seconds,
            }
        )
        for step, values in hist.probes:
            for layer in range(cell.model.depth):
                row = {**s, "step": step, "layer": layer + 1}
                row.update({q: values[q][r, layer] for q in QUANTITIES})
                layers.append(row)
        for epoch, step, loss, val in hist.curves:
            curve_rows.append(
                {**s, "epoch": epoch, "step": step, "train_loss": loss[r], "val_accuracy": val[r]}
            )
    runs_df = pd.DataFrame(runs)
    runs_df["diverged_step"] = runs_df["diverged_step"].astype("Int64")
    runs_df["reset_layers"] = runs_df["reset_layers"].astype(int)
    return runs_df, pd.DataFrame(layers), pd.DataFrame(curve_rows)


def probe_inputs(cell_name: str, splits: Splits) -> pd.DataFrame:
    """One row per probe example: its training row and the mean of its x^2 over features."""
    return pd.DataFrame(
        {
            "cell": cell_name,
            "example": np.arange(len(splits.probe)),
            "train_row": splits.probe.cpu().numpy(),
            "second_moment": splits.probe_second_moments(),
        }
    )


def run_metrics(run: pd.Series, layers: pd.DataFrame, curves: pd.DataFrame, depth: int):
    """(key, value, step) triples of one run for MLflow, with stage-prefixed names."""
    width = max(2, len(str(depth)))
    out = [
        (f"{q}/layer_{int(layer):0{width}d}", v, st)
        for q in GRADIENTS
        for layer, v, st in zip(layers["layer"], layers[q], layers["step"], strict=True)
    ]
    out += [("train/loss", v, s) for v, s in zip(curves["train_loss"], curves["step"], strict=True)]
    out += [
        ("val/accuracy", v, s) for v, s in zip(curves["val_accuracy"], curves["step"], strict=True)
    ]
    last = int(curves["step"].max()) if len(curves) else 0
    for key, col in [
        ("train/final_loss", "final_train_loss"),
        ("val/final_accuracy", "final_val_accuracy"),
        ("val/best_accuracy", "best_val_accuracy"),
        ("test/accuracy", "final_test_accuracy"),
        ("grad_ratio_init", "grad_ratio_init"),
    ]:
        out.append((key, run[col], last))
    out.append(("diverged", float(run["diverged"]), last))
    return out


def train_cell(cell: Cell, cell_dir: Path, tracking: dict, accelerator: str) -> dict:
    """Train one cell, log its runs to MLflow, and write its tables; returns its timings."""
    from vanishing.training.module import fit_cell

    replicas = run_settings(cell)
    if cell_dir.exists():
        shutil.rmtree(cell_dir)
    cell_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    splits = cached_splits(cell.data, cell.train.probe_size)
    t_mlflow = time.perf_counter()
    mlflow_runs = CellRuns(tracking)
    params = {**provenance(), "init_scheme": cell.model.init_scheme, "cell": cell.name}
    # the settings that are not table columns (the split, the probe size) are params too
    params.update({k: v for k, v in cell.values().items() if k not in replicas[0]})
    run_ids = mlflow_runs.start(cell.name, replicas, params)
    start_seconds = time.perf_counter() - t_mlflow
    try:
        module, fit_seconds = fit_cell(cell, splits, accelerator=accelerator)
        runs, layers, curves = cell_tables(cell, splits, module, fit_seconds)
        runs.insert(runs.columns.get_loc("init_scheme"), "mlflow_run_id", run_ids)
        runs["git_commit"] = params["git_commit"]
        t_log = time.perf_counter()
        for r, run_id in enumerate(run_ids):
            seed, lr = replicas[r]["seed"], replicas[r]["lr"]
            sel = (layers["seed"] == seed) & (layers["lr"] == lr)
            csel = (curves["seed"] == seed) & (curves["lr"] == lr) if len(curves) else []
            mlflow_runs.log(
                run_id, run_metrics(runs.iloc[r], layers[sel], curves[csel], cell.model.depth)
            )
            mlflow_runs.finish(run_id)
        log_seconds = time.perf_counter() - t_log + start_seconds
    except BaseException:
        mlflow_runs.fail_all(run_ids)
        raise
    runs.to_csv(cell_dir / "runs.csv", index=False)
    layers.to_csv(cell_dir / "layer_gradients.csv", index=False)
    curves.to_csv(cell_dir / "curves.csv", index=False)
    probe_inputs(cell.name, splits).to_csv(cell_dir / "probe_inputs.csv", index=False)
    timing = {
        "fit_seconds": fit_seconds,
        "fit_cpu_seconds": module.history.fit_cpu_seconds,
        "steps": module.global_step,
        "replicas": len(replicas),
        "probe_seconds": module.history.probe_seconds,
        "eval_seconds": module.history.eval_seconds,
        "mlflow_seconds": log_seconds,
        "cell_seconds": time.perf_counter() - t0,
    }
    spec = cell.spec()
    (cell_dir / DONE).write_text(
        json.dumps({"spec_hash": spec_hash(spec), "spec": spec, "timing": timing}, indent=2)
    )
    return timing


def run_job(cells: list[Cell], out: Path, tracking: dict, accelerator: str):
    """Train every cell not yet done; returns (done cell names, failed cell names)."""
    done, failed = [], []
    for i, cell in enumerate(cells, 1):
        cell_dir = out / cell.name
        if is_done(cell_dir, cell):
            log.info("[%d/%d] %s: already done, skipped", i, len(cells), cell.name)
            done.append(cell.name)
            continue
        log.info("[%d/%d] %s: training %d replicas", i, len(cells), cell.name, len(cell.replicas()))
        try:
            timing = train_cell(cell, cell_dir, tracking, accelerator)
        except Exception:
            log.exception("[%d/%d] %s: failed", i, len(cells), cell.name)
            failed.append(cell.name)
            continue
        log.info(
            "[%d/%d] %s: done in %.1f s (fit %.1f s)",
            i,
            len(cells),
            cell.name,
            timing["cell_seconds"],
            timing["fit_seconds"],
        )
        done.append(cell.name)
    return done, failed
