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
