"""Concatenate the per-cell files of every training job into the study's tables.

Reads the files the training jobs wrote (not MLflow), so the tables can be rebuilt offline.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

TABLES = ("runs", "layer_gradients", "curves", "probe_inputs")  # each cell's <table>.csv


def cell_dirs(manifests: list[Path]) -> list[Path]:
    """The cell folders listed by the jobs' manifests, in order, each once."""
    seen: dict[Path, None] = {}
    for m in manifests:
        for d in json.loads(Path(m).read_text())["cells"]:
            seen.setdefault(Path(d), None)
    return list(seen)


def aggregate(manifests: list[Path], out: Path) -> dict[str, pd.DataFrame]:
    """Write ``out/{runs,layer_gradients,curves,probe_inputs}.csv`` and return them."""
    dirs = cell_dirs(manifests)
    if not dirs:
        raise ValueError("no finished cells listed in the manifests")
    out.mkdir(parents=True, exist_ok=True)
    tables = {}
    for name in TABLES:
        frames = [pd.read_csv(d / f"{name}.csv") for d in dirs]
        df = pd.concat(frames, ignore_index=True)
        if name == "runs":
            df["diverged_step"] = df["diverged_step"].astype("Int64")
            dup = df.duplicated(["cell", "lr", "seed"])
            if dup.any():
                raise ValueError(f"{int(dup.sum())} runs appear twice (same cell, lr, seed)")
        df.to_csv(out / f"{name}.csv", index=False)
        tables[name] = df
    return tables
