"""Synthetic runs.csv tables for the statistics and findings tests: every contract column, with
defaults that each test overrides row by row. The setting columns and their defaults come from
the registry of settings; only the architecture axes (which have none) and a few values that
keep the tables small are set here."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vanishing.activations import SATURATING
from vanishing.settings import BY_NAME, CELL_KEYS, COLUMNS

CELL_SETTINGS = CELL_KEYS
SMALL = dict(activation="relu", depth=2, norm="none", residual=False, width=16, lr=0.1,
             batch_size=32, epochs=3, probe_every=5)  # fmt: skip
SETTING_DEFAULTS = {k: SMALL.get(k, BY_NAME[k].default) for k in COLUMNS}
DEFAULTS = dict(
    **SETTING_DEFAULTS, seed=0, input_dim=64, n_classes=10, input_second_moment=1.0,
    mlflow_run_id="run", final_train_loss=0.5, final_val_accuracy=0.9, best_val_accuracy=0.9,
    final_test_accuracy=0.9, diverged=False, diverged_step=np.nan, grad_ratio_init=1.0,
    train_seconds=1.0, grids="main",
)  # fmt: skip
__all__ = ["CELL_SETTINGS", "DEFAULTS", "SATURATING", "make_runs", "probe_inputs"]


def make_runs(rows: list[dict]) -> pd.DataFrame:
    """A runs.csv-shaped table: defaults overridden by each dict; a diverged run gets the NaN
    losses and accuracies the pipeline writes for it."""
    out = []
    for row in rows:
        r = {**DEFAULTS, **row}
        r["cell"] = "_".join(f"{k}~{r[k]}" for k in CELL_SETTINGS)
        r.setdefault("init_scheme", "xavier" if r["activation"] in SATURATING else "kaiming")
        if r["diverged"]:
            r.update(final_train_loss=np.nan, final_val_accuracy=np.nan, final_test_accuracy=np.nan)
        out.append(r)
    return pd.DataFrame(out)


def probe_inputs(runs: pd.DataFrame, second_moments=(1.0,)) -> pd.DataFrame:
    """A probe_inputs.csv-shaped table: every cell of ``runs`` probed on examples with these
    second moments (mean of x^2 over features)."""
    return pd.DataFrame(
        [
            {"cell": cell, "example": i, "train_row": i, "second_moment": m}
            for cell in runs["cell"].unique()
            for i, m in enumerate(second_moments)
        ]
    )


def axis(fig, gid):
    """The one axes of ``fig`` whose gid is ``gid``."""
    (ax,) = [ax for ax in fig.axes if ax.get_gid() == gid]
    return ax


def line(ax, gid):
    """The one line of ``ax`` whose gid is ``gid``."""
    (ln,) = [ln for ln in ax.get_lines() if ln.get_gid() == gid]
    return ln
