"""Means over seeds of per-layer and per-epoch curves, the small aggregations figures need.

Pure pandas, nothing drawn: each function takes the ``layer_gradients.csv`` or ``curves.csv``
table (see docs/outputs.md), and most take ``selected.csv`` (``stats.select_lr``) to keep only each
cell's selected lr. Every output row keeps the cell's setting columns, so a figure only selects
rows. Gradients are averaged on the log scale: ``log10_grad_preact_rms`` is the mean over seeds
of log10 grad_preact_rms (a geometric mean), the quantity whose straight-line decay across layers
is vanishing; a non-positive rms has no logarithm and is left out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vanishing.analysis.metrics import as_bool, log10_positive
from vanishing.analysis.stats import LEVEL, t_interval
from vanishing.settings import CELL_KEYS

RUN = ("cell", "lr", "seed")
__all__ = ["as_bool", "log10_positive"]  # re-exported for the figures


def _settings(df: pd.DataFrame) -> list[str]:
    """The cell's setting columns present in df (with ``cell`` first)."""
    return ["cell", *(k for k in CELL_KEYS if k in df.columns)]


def _mean_over_seeds(df: pd.DataFrame, keys: list[str], value: str, out: str) -> pd.DataFrame:
    """Per ``keys`` (which include settings): mean of ``value`` over seeds, and ``n_seeds``."""
    g = df.groupby(keys, sort=True, dropna=False)[value]
    res = g.mean().rename(out).to_frame()
    res["n_seeds"] = g.count()
    res = res.reset_index()
    if "residual" in res.columns:
        res["residual"] = as_bool(res["residual"])
    return res


def at_selected_lr(df: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """The rows of df (runs, layers or curves) trained at their cell's selected lr."""
    return df.merge(selected[["cell", "lr"]].drop_duplicates(), on=["cell", "lr"], how="inner")


def init_profiles(layers: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, layer): ``log10_grad_preact_rms`` at step 0, mean over seeds, and
    ``n_seeds``.

    Step 0 does not depend on the lr: each seed's runs are first averaged over lrs (identical
    networks), so every seed counts once.
    """
    l0 = layers.loc[layers["step"] == 0].copy()
    l0["log10"] = log10_positive(l0["grad_preact_rms"])
    keys = [*_settings(l0), "layer"]
    per_seed = l0.groupby([*keys, "seed"], sort=True, dropna=False)["log10"].mean().reset_index()
    return _mean_over_seeds(per_seed, keys, "log10", "log10_grad_preact_rms")


def flow(layers: pd.DataFrame, selected: pd.DataFrame, quantity: str) -> pd.DataFrame:
    """One row per (cell, step, layer) at the cell's selected lr: ``log10_<quantity>``, the mean
    over seeds of log10 of a per-layer quantity of layer_gradients.csv, and ``n_seeds``."""
    df = at_selected_lr(layers, selected)
    df["log10"] = log10_positive(df[quantity])
    keys = [*_settings(df), "lr", "step", "layer"]
    return _mean_over_seeds(df, keys, "log10", f"log10_{quantity}")


def gradient_flow(layers: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """``flow`` of ``grad_preact_rms``: ``log10_grad_preact_rms`` per (cell, step, layer)."""
    return flow(layers, selected, "grad_preact_rms")


def ratio_over_steps(layers: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, step) at the selected lr: ``abs_log10_grad_ratio``, the mean over seeds
    of |log10(layer-1 / top grad_preact_rms)| (distance from balanced flow), and ``n_seeds``."""
    df = at_selected_lr(layers, selected)
    ends = df[(df["layer"] == 1) | (df["layer"] == df["depth"])].copy()
    ends["end"] = np.where(ends["layer"] == 1, "first", "top")
    keys = [*_settings(ends), "lr", "step"]
    wide = ends.pivot_table(index=[*keys, "seed"], columns="end", values="grad_preact_rms",
                            dropna=False).reset_index()  # fmt: skip
    if "first" not in wide or "top" not in wide:
        return pd.DataFrame(columns=[*keys, "abs_log10_grad_ratio", "n_seeds"])
    wide["abs"] = log10_positive(wide["first"] / wide["top"]).abs().to_numpy()
    return _mean_over_seeds(wide, keys, "abs", "abs_log10_grad_ratio")


def saturation_profiles(layers: pd.DataFrame, selected: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, stage, layer) at the selected lr: mean ``saturation`` over seeds.

    ``stage`` is ``init`` (step 0) or ``final`` (each run's last probed step); ``step`` is the
    largest step averaged (runs of a cell normally stop at the same step).
    """
    df = at_selected_lr(layers, selected)
    last = df.groupby(list(RUN))["step"].transform("max")
    parts = []
    for stage, rows in (("init", df[df["step"] == 0]), ("final", df[df["step"] == last])):
        keys = [*_settings(rows), "lr", "layer"]
        g = rows.groupby(keys, sort=True, dropna=False)
        res = g.agg(step=("step", "max"), saturation=("saturation", "mean"))
        res["n_seeds"] = g["saturation"].count()
        parts.append(res.reset_index().assign(stage=stage))
    out = pd.concat(parts, ignore_index=True)
    out["residual"] = as_bool(out["residual"])
    return out


def curve_bands(curves: pd.DataFrame, selected: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """One row per (cell, epoch) at the selected lr: ``step`` and, for ``train_loss`` and
    ``val_accuracy``, the mean over seeds with a t-interval (``stats.t_interval``) in
    ``{metric}_mean``, ``_ci_low``, ``_ci_high``; ``n_seeds`` counts finite losses.

    Non-finite values (a diverged run) are left out of that epoch's estimate.
    """
    df = at_selected_lr(curves, selected)
    keys = [*_settings(df), "lr", "epoch"]
    rows = []
    for key, g in df.groupby(keys, sort=True, dropna=False):
        row = dict(zip(keys, key, strict=True))
        row["step"] = g["step"].max()
        for metric in ("train_loss", "val_accuracy"):
            mean, _, low, high = t_interval(g[metric].to_numpy(dtype=float), level)
            row.update({f"{metric}_mean": mean, f"{metric}_ci_low": low, f"{metric}_ci_high": high})
        row["n_seeds"] = int(np.isfinite(g["train_loss"].to_numpy(dtype=float)).sum())
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out) and "residual" in out.columns:
        out["residual"] = as_bool(out["residual"])
    return out
