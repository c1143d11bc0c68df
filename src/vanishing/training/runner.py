"""One training job: its cells one after another, each written to ``<out>/<cell>/`` when done.

A cell's folder is complete when it holds ``DONE.json`` (``vanishing.record``), written last and
atomically (a kill -9 or a full disk never leaves half of one); a rerun skips complete cells
whose settings are unchanged and trains the others, so a job that stopped half-way continues
where it stopped (these folders are not Snakemake outputs, which Snakemake deletes when a job
fails).
A cell that raises does not stop the job: the others still train, and the job fails at the end
naming the failed cells. A full disk does stop it (``DiskFull``, naming the file system and the
file being written): the finished cells stay, the unfinished one is removed, and a small file
written at the job's start is deleted so that the message has room in the log on the same disk.
A job whose finished cells were made by other code stops before any work (``CodeChanged``).

A cell's steps, each its own function: ``train_cell`` trains and makes the tables (no files, no
MLflow), ``log_cell`` logs its MLflow runs, ``write_cell`` writes its folder; ``run_cell`` calls
them in turn, its MLflow runs started first so that the UI shows them RUNNING while it trains.
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from vanishing import record
from vanishing.config import Cell, DataConfig, run_settings
from vanishing.disk import DiskFull, writing
from vanishing.outputs import DONE
from vanishing.progress import JobProgress
from vanishing.tracking import names, pages
from vanishing.tracking.provenance import provenance
from vanishing.tracking.store import CellRuns, sqlite_path
from vanishing.training.data import DATA_SOURCES, Splits, load_splits
from vanishing.training.probes import QUANTITIES

log = logging.getLogger(__name__)
RESERVE_BYTES = 256 * 1024  # kept free for the log's last words on a full disk
RETRAIN_HINT = "make study CONFIG=... DIR=... RETRAIN=stale (vanishing study --retrain stale)"


@functools.cache
def profile_image() -> pages.ProfileImage:
    """The one figure this process draws every replica's profile image on."""
    return pages.ProfileImage()


@functools.cache
def cached_splits(data: DataConfig, probe_size: int) -> Splits:
    """The split data, made once per process (every cell of a job shares it)."""
    return load_splits(data, probe_size)


def cell_tables(cell: Cell, splits: Splits, module, fit_seconds: float):
    """runs, layer_gradients and curves rows of one trained cell (see docs/outputs.md)."""
    hist = module.history
    settings = [{**s, "cell": cell.name} for s in run_settings(cell)]
    init_rms = hist.probes[0][1]["grad_preact_rms"]  # (R, depth), step 0
    sw2_value, sb2_value = cell.model.hidden_scales  # of the hidden layers, as drawn
    runs, layers, curve_rows = [], [], []
    for r, s in enumerate(settings):
        runs.append(
            {
                **s,
                "init_scheme": cell.model.init_scheme,
                "sigma_w2_value": sw2_value,
                "sigma_b2_value": sb2_value,
                "input_dim": splits.input_dim,
                "n_classes": splits.n_classes,
                "n_val": len(splits.y_val),
                "input_second_moment": splits.input_second_moment,
                **{k: float(v[r]) for k, v in hist.final.items()},
                "diverged": hist.diverged_step[r] is not None,
                "diverged_step": hist.diverged_step[r],
                "grad_ratio_init": float(init_rms[r, 0] / init_rms[r, -1]),
                **{k: v[r].item() for k, v in hist.isometry.items()},
                "train_seconds": fit_seconds,
            }
        )
        for step, values in hist.probes:
            for layer in range(values["grad_preact_rms"].shape[1]):  # a recurrent net's: T
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
    curve_columns = [*settings[0], "epoch", "step", "train_loss", "val_accuracy"]
    return runs_df, pd.DataFrame(layers), pd.DataFrame(curve_rows, columns=curve_columns)


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


@functools.cache
def cached_datasets(data: DataConfig, probe_size: int) -> tuple[dict, ...]:
    """The splits as MLflow datasets (``Dataset.to_dict()`` plus the split's context), digests
    computed by MLflow once per process."""
    from mlflow.data import from_numpy
    from mlflow.data.code_dataset_source import CodeDatasetSource

    splits = cached_splits(data, probe_size)
    source = CodeDatasetSource(
        {
            "loader": DATA_SOURCES[data.name],
            "split_seed": str(data.split_seed),
            "val_fraction": str(data.val_fraction),
            "test_fraction": str(data.test_fraction),
            "features": "standardised with the training split's mean and sd",
        }
    )
    out = []
    for split, context in (("train", "training"), ("val", "validation"), ("test", "test")):
        x = getattr(splits, f"x_{split}").cpu().numpy()
        y = getattr(splits, f"y_{split}").cpu().numpy()
        ds = from_numpy(x, source=source, targets=y, name=f"{data.name}_{split}")
        out.append({**ds.to_dict(), "context": context})
    return tuple(out)


def log_replica(runs: CellRuns, run_id: str, row: pd.Series, layers, curves, folder: Path):
    """One replica's metrics, its per-layer table and every file already in ``folder`` (its
    profile image) to its MLflow run, which is then FINISHED."""
    runs.log(run_id, pages.replica_metrics(row, layers, curves))
    layers[["step", "layer", *QUANTITIES]].to_csv(folder / pages.LAYER_TABLE, index=False)
    runs.log_artifacts(run_id, folder)
    runs.finish(run_id)


def profile_title(row: pd.Series, values: dict) -> str:
    text = f"{names.cell_run_name(values)}\nlr {row['lr']:g}, seed {row['seed']}"
    return text + (f", diverged at step {row['diverged_step']}" if row["diverged"] else "")


def is_profile(cell: Cell) -> bool:
    """A step-0 profile cell (0 epochs): one MLflow run for the cell, none per replica."""
    return cell.train.epochs == 0


@dataclass
class Trained:
    """A trained cell: its tables (``outputs.CELL_TABLES``, see docs/outputs.md) and timings."""

    tables: dict[str, pd.DataFrame]
    timing: dict


def train_cell(cell: Cell, splits: Splits, accelerator: str, progress=None) -> Trained:
    """Train one cell's replicas (one batched model) and make its tables; no file is written.
    ``progress`` hears of every training step."""
    from vanishing.training.module import fit_cell

    module, fit_seconds = fit_cell(cell, splits, accelerator=accelerator, progress=progress)
    runs, layers, curves = cell_tables(cell, splits, module, fit_seconds)
    tables = {"runs": runs, "layer_gradients": layers, "curves": curves,
              "probe_inputs": probe_inputs(cell.name, splits)}  # fmt: skip
    timing = {
        "fit_seconds": fit_seconds,
        "fit_cpu_seconds": module.history.fit_cpu_seconds,
        "steps": module.global_step,
        "replicas": len(cell.replicas()),
        "probe_seconds": module.history.probe_seconds,
        "eval_seconds": module.history.eval_seconds,
    }
    return Trained(tables, timing)


def log_cell(mlflow_runs: CellRuns, cell: Cell, trained: Trained, run_ids: list[str]) -> float:
    """Draw the profile images and log every replica's run (a profile cell: its one run, with
    every seed's profile in one image and one table); returns the seconds spent drawing."""
    runs, layers = trained.tables["runs"], trained.tables["layer_gradients"]
    curves = trained.tables["curves"]
    values = cell.values()
    with tempfile.TemporaryDirectory() as tmp:
        t_image = time.perf_counter()
        if is_profile(cell):
            folder = Path(tmp)
            title = f"{names.cell_run_name(values)}\nat init, {len(cell.seeds)} seeds"
            pages.draw_seed_profiles(layers, title, folder / pages.PROFILE_IMAGE)
            image_seconds = time.perf_counter() - t_image
            mlflow_runs.log(run_ids[0], pages.profile_cell_metrics(runs))
            cols = ["seed", "lr", "step", "layer", *QUANTITIES]
            layers[cols].to_csv(folder / pages.LAYER_TABLE, index=False)
            mlflow_runs.log_artifacts(run_ids[0], folder)
            mlflow_runs.finish(run_ids[0])
            return image_seconds
        sel = [(layers["seed"] == s) & (layers["lr"] == lr) for s, lr in cell.replicas()]
        folders = [Path(tmp) / str(r) for r in range(len(run_ids))]
        items = []
        for r, folder in enumerate(folders):
            folder.mkdir()
            items.append((layers[sel[r]], profile_title(runs.iloc[r], values),
                          folder / pages.PROFILE_IMAGE))  # fmt: skip
        profile_image().draw_cell(items)
        image_seconds = time.perf_counter() - t_image
        for r, run_id in enumerate(run_ids):
            seed, lr = cell.replicas()[r]
            csel = (curves["seed"] == seed) & (curves["lr"] == lr)
            log_replica(mlflow_runs, run_id, runs.iloc[r], layers[sel[r]], curves[csel],
                        folders[r])  # fmt: skip
        mlflow_runs.finish(mlflow_runs.cell_run_id)
    return image_seconds


def write_cell(cell_dir: Path, cell: Cell, trained: Trained, version: str, **extra) -> None:
    """The cell's tables, then its record (DONE.json, ``vanishing.record``) last."""
    for name, table in trained.tables.items():
        with writing(cell_dir / f"{name}.csv"):
            table.to_csv(cell_dir / f"{name}.csv", index=False)
    with writing(cell_dir / DONE):
        record.write(cell_dir, cell, version, timing=trained.timing, **extra)


def run_cell(cell: Cell, cell_dir: Path, tracking: dict, accelerator: str,
             progress: JobProgress | None = None, version: str = "unknown") -> dict:  # fmt: skip
    """One cell from start to finish: its MLflow runs started (so the UI shows them RUNNING
    while it trains), trained, logged, its files written; returns its timings."""
    with writing(cell_dir):
        if cell_dir.exists():
            shutil.rmtree(cell_dir)
        cell_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    splits = cached_splits(cell.data, cell.train.probe_size)
    datasets = cached_datasets(cell.data, cell.train.probe_size)
    t_mlflow = time.perf_counter()
    store = sqlite_path(tracking["tracking_uri"])  # None for a tracking server
    params = {**provenance(), "git_commit": version, "init_scheme": cell.model.init_scheme,
              "cell": cell.name}  # fmt: skip
    mlflow_runs = CellRuns(tracking, version, datasets)
    replicas = run_settings(cell)
    # the settings that are not table columns (the split, the probe size) are params too
    params.update({k: v for k, v in cell.values().items() if k not in replicas[0]})
    with writing(store):
        run_ids = mlflow_runs.start(cell.name, replicas, params, not is_profile(cell))
    start_seconds = time.perf_counter() - t_mlflow
    try:
        trained = train_cell(cell, splits, accelerator, progress)
        runs = trained.tables["runs"]
        ids = run_ids if len(run_ids) == len(runs) else run_ids * len(runs)
        runs.insert(runs.columns.get_loc("init_scheme"), "mlflow_run_id", ids)
        runs["git_commit"] = version
        t_log = time.perf_counter()
        with writing(store):
            image_seconds = log_cell(mlflow_runs, cell, trained, run_ids)
        log_seconds = time.perf_counter() - t_log + start_seconds - image_seconds
    except BaseException:
        mlflow_runs.fail_all(run_ids)
        raise
    trained.timing.update(mlflow_seconds=log_seconds, image_seconds=image_seconds,
                          cell_seconds=time.perf_counter() - t0)  # fmt: skip
    write_cell(cell_dir, cell, trained, version, mlflow_cell_run_id=mlflow_runs.cell_run_id,
               datasets=list(datasets))  # fmt: skip
    return trained.timing


def run_job(cells: list[Cell], out: Path, tracking: dict, accelerator: str,
            job: str = "job", progress_path: Path | None = None):  # fmt: skip
    """Train every cell not yet done; returns (done cell names, failed cell names). Progress
    (cell, step, live and diverged replicas, time left) goes to the log every few seconds and
    to ``progress_path`` (``vanishing.progress``)."""
    steps = {}
    for cell in cells:
        n_train = len(cached_splits(cell.data, cell.train.probe_size).y_train)
        steps[cell.name] = cell.train.epochs * (n_train // cell.train.batch_size)
    version = record.code_version()
    done_cells = [c.name for c in cells if record.is_done(out / c.name, c)]
    stale = record.stale_cells(out, version, names=done_cells)
    if stale:  # before any work: one study, one code version
        raise record.CodeChanged(record.stale_message(stale, version, RETRAIN_HINT))
    progress = JobProgress(job, cells, steps, progress_path)
    # room kept on the study's disk for the log's last words: a full disk stops the job, and the
    # message that says so (written where the log is, on the same disk) needs a little space
    reserve = out / f".{job}.reserve"
    with writing(reserve):
        out.mkdir(parents=True, exist_ok=True)
        reserve.write_bytes(b"\0" * RESERVE_BYTES)
    done, failed = [], []
    for i, cell in enumerate(cells, 1):
        cell_dir = out / cell.name
        if cell.name in done_cells:
            log.info("[%d/%d] %s: already done, skipped", i, len(cells), cell.name)
            done.append(cell.name)
            progress.skip(cell.name)
            continue
        log.info("[%d/%d] %s: training %d replicas", i, len(cells), cell.name, len(cell.replicas()))
        progress.start_cell(i, cell.name, len(cell.replicas()))
        try:
            timing = run_cell(cell, cell_dir, tracking, accelerator, progress, version)
        except DiskFull:
            # every later cell would fail the same way: stop, and give the unfinished cell's
            # space back so that the message reaches the log
            reserve.unlink(missing_ok=True)
            shutil.rmtree(cell_dir, ignore_errors=True)
            raise
        except Exception:
            log.exception("[%d/%d] %s: failed", i, len(cells), cell.name)
            failed.append(cell.name)
            progress.end_cell(cell.name, ok=False)
            continue
        progress.end_cell(cell.name, ok=True)
        log.info(
            "[%d/%d] %s: done in %.1f s (fit %.1f s, MLflow %.1f s, images %.1f s)",
            i,
            len(cells),
            cell.name,
            timing["cell_seconds"],
            timing["fit_seconds"],
            timing["mlflow_seconds"],
            timing["image_seconds"],
        )
        done.append(cell.name)
    reserve.unlink(missing_ok=True)
    progress.write(status="failed" if failed else "done")
    return done, failed
