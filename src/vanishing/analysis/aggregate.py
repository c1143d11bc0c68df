"""Concatenate the per-cell files of every training job into the study's tables.

Reads the files the training jobs wrote (not MLflow), so the tables can be rebuilt offline. Each
job's manifest lists its cells with the sub-grids each belongs to; ``runs.csv`` carries that
membership in its ``grids`` column (space-separated sub-grid names).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from vanishing.outputs import CELL_TABLES


def manifest_cells(manifests: list[Path]) -> dict[Path, list[str]]:
    """Cell folder -> its sub-grids, for every cell the manifests list, in order, each once."""
    seen: dict[Path, list[str]] = {}
    for m in manifests:
        for c in json.loads(Path(m).read_text())["cells"]:
            seen.setdefault(Path(c["dir"]), list(c["grids"]))
    return seen


def aggregate(manifests: list[Path], out: Path) -> dict[str, pd.DataFrame]:
    """Write ``out/<table>.csv`` for each of ``CELL_TABLES`` and return them."""
    cells = manifest_cells(manifests)
    if not cells:
        raise ValueError("no finished cells listed in the manifests")
    out.mkdir(parents=True, exist_ok=True)
    tables = {}
    for name in CELL_TABLES:
        frames = [pd.read_csv(d / f"{name}.csv") for d in cells]
        if name == "runs":
            for frame, grids in zip(frames, cells.values(), strict=True):
                frame["grids"] = " ".join(grids)
        df = pd.concat(frames, ignore_index=True)
        if name == "runs":
            df["diverged_step"] = df["diverged_step"].astype("Int64")
            dup = df.duplicated(["cell", "lr", "seed"])
            if dup.any():
                raise ValueError(f"{int(dup.sum())} runs appear twice (same cell, lr, seed)")
        df.to_csv(out / f"{name}.csv", index=False)
        tables[name] = df
    return tables


def train_jobs(benchmarks: list[Path], manifests: list[Path]) -> pd.DataFrame:
    """One row per training job: what Snakemake's ``benchmark:`` measured of it (wall seconds
    ``s``, peak resident memory ``max_rss`` in MB, ``cpu_time``, ``mean_load``) beside what the
    job's manifest says (cells trained, seconds importing and inside ``trainer.fit``, the SLURM
    job id). Benchmark and manifest pair by file name (the job's name)."""
    by_job = {Path(m).stem: json.loads(Path(m).read_text()) for m in manifests}
    rows = []
    for b in benchmarks:
        job = Path(b).stem
        bench = pd.read_csv(b, sep="\t").iloc[-1]  # the last repeat, if a job was benchmarked more
        m = by_job.get(job, {})
        rows.append(
            {
                "job": job,
                "cells": len(m.get("cells", [])),
                "seconds": float(bench["s"]),
                "max_rss_mb": float(bench["max_rss"]),
                "cpu_seconds": float(bench["cpu_time"]),
                "mean_load": float(bench["mean_load"]),
                "import_seconds": m.get("import_seconds"),
                "fit_seconds": m.get("fit_seconds"),
                "slurm_job_id": m.get("slurm_job_id", ""),
            }
        )
    return pd.DataFrame(rows)
