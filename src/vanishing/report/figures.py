"""The study's figures, drawn from the tables in ``results/tables/`` (no torch, no statistics).

Means and intervals come from ``summary.csv`` / ``selected.csv`` (``vanishing.stats``) and
``theory_profiles.csv`` (``vanishing.theory``); means over seeds of curves and layer profiles come
from ``vanishing.profiles``. A figure only selects rows and takes log10. Each ``plot_*`` returns a
``matplotlib.figure.Figure`` (Agg canvas, no pyplot state) and raises ``MissingData`` when the
tables cannot support it; ``write_all`` then writes a placeholder that says why.

Variants are (norm, residual) pairs, named ``plain``, ``residual``, ``batch norm``,
``batch norm + residual``, ...; depth is the number of hidden layers; layer 1 is nearest the input.

The trainability, lr-sweep and training-curve figures live here, the gradient figures in
``vanishing.figures_gradients``, and the helpers both share in ``vanishing.plotting``.
"""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vanishing.analysis import profiles
from vanishing.analysis.tables import read_tables
from vanishing.report import catalog, figures_gradients
from vanishing.report.plotting import (
    ACTIVATIONS,
    AXES,
    OTHER_KEYS,
    MissingData,
    _chance,
    _depth_lines,
    _facets,
    _label,
    _legend,
    _levels,
    _need,
    _per_depth,
    _rows,
    _styled,
    _variants,
    placeholder,
    save,
    variant_label,
    variant_style,
)


@_styled
def plot_trainability(selected: pd.DataFrame) -> Figure:
    """Final test accuracy at each cell's selected lr (mean, 95% CI) against depth, a line per
    activation; columns norm, rows residual. Open circles: the selected lr is at the grid's edge."""
    _need(selected, [*AXES, "final_test_accuracy_mean", "final_test_accuracy_ci_low"], "selected")
    return _per_depth(selected, "final_test_accuracy", log=False)


@_styled
def plot_lr_sweep(summary: pd.DataFrame) -> Figure:
    """Final test accuracy (mean over seeds) against lr, a line per depth; rows activation,
    columns variant; a star marks each cell's selected lr (best mean validation accuracy)."""
    _need(summary, [*AXES, "lr", "final_test_accuracy_mean", "selected"], "summary")
    y = "final_test_accuracy_mean"
    fig, axes, acts, variants, colors, drawn = _depth_lines(summary, "lr", y)
    for (i, j, d), s in drawn.items():
        best = profiles.as_bool(s["selected"]).to_numpy()
        axes[i, j].plot(
            s["lr"][best],
            s[y][best],
            "*",
            ms=9,
            color=colors[d],
            mec="k",
            mew=0.5,
            gid=f"selected depth={d}",
        )
    for ax in axes.flat:
        _chance(ax, summary)
    axes[0, 0].set_xscale("log")
    axes[0, 0].set_ylim(0, 1.02)
    _label(
        axes, acts, [variant_label(*v) for v in variants], "learning rate", "final test accuracy"
    )
    entries = {str(d): dict(color=c, marker=".") for d, c in colors.items()}
    entries["selected lr"] = dict(color="0.5", marker="*", ms=9, mec="k", mew=0.5, ls="none")
    entries["chance"] = dict(color="0.5", ls="--")
    _legend(fig, entries, "depth")
    fig.suptitle("Learning-rate sweep: test accuracy, mean over seeds")
    return fig


def _shown_variants(selected: pd.DataFrame, activation: str) -> list[tuple[str, bool]]:
    """Plain and the remedy (another variant) with the best mean validation accuracy at the
    activation's deepest depth; either may be missing from the grid."""
    rows = _rows(selected, activation=activation)
    deep = rows[rows["depth"] == rows["depth"].max()]
    variants = _variants(deep)
    remedies = [v for v in variants if v != ("none", False)]
    shown = [("none", False)] if ("none", False) in variants else []
    if remedies:
        val = {
            v: _rows(deep, norm=v[0], residual=v[1])["final_val_accuracy_mean"].max()
            for v in remedies
        }
        shown.append(max(remedies, key=lambda v: np.nan_to_num(val[v], nan=-1.0)))
    return shown


@_styled
def plot_training_curves(curves: pd.DataFrame, selected: pd.DataFrame) -> Figure:
    """Train loss and validation accuracy against step (mean, 95% CI band over seeds;
    ``profiles.curve_bands``) at the selected lr, for the smallest, a middle and the largest
    depth; plain against the best remedy, per activation (rows)."""
    _need(curves, [*AXES, "cell", "lr", "step", "train_loss", "val_accuracy"], "curves")
    _need(selected, [*AXES, "cell", "lr", "final_val_accuracy_mean"], "selected")
    bands = profiles.curve_bands(curves, selected)
    if bands.empty:
        raise MissingData("curves has no runs at the selected lrs")
    depths = _levels(bands["depth"])
    chosen = sorted({depths[0], depths[len(depths) // 2], depths[-1]})
    acts = _levels(bands["activation"], ACTIVATIONS)
    fig, axes = _facets(len(acts), 2 * len(chosen), w=2.4, h=2.0, sharex=True)
    n_classes = selected["n_classes"].max() if "n_classes" in selected.columns else np.nan
    chance_loss = np.log(n_classes) if np.isfinite(n_classes) else np.nan
    used, loss_axes, peak = {}, [], [1.0]
    for i, a in enumerate(acts):
        shown = _shown_variants(selected, a)
        for (k, d), (m, metric) in product(
            enumerate(chosen), enumerate(("train_loss", "val_accuracy"))
        ):
            ax = axes[i, m * len(chosen) + k]
            ax.set_gid(f"{a}|{metric}|depth={d}")
            for n, r in shown:
                s = _rows(bands, activation=a, depth=d, norm=n, residual=r).sort_values("step")
                style, label = variant_style(n, r), variant_label(n, r)
                used[label] = style
                ax.plot(s["step"], s[f"{metric}_mean"], **style, gid=label)
                lo, hi = s[f"{metric}_ci_low"], s[f"{metric}_ci_high"]
                ax.fill_between(s["step"], lo, hi, color=style["color"], alpha=0.2, lw=0)
                if metric == "train_loss":
                    peak += [v for v in (*s["train_loss_mean"], *hi) if np.isfinite(v)]
            if metric == "val_accuracy":
                _chance(ax, selected, ls=":")
                ax.set_ylim(0, 1.02)
            else:
                loss_axes.append(ax)
                if np.isfinite(chance_loss):
                    ax.axhline(chance_loss, ls=":", lw=1.2, color="0.5", zorder=0)
    top = max(peak) if not np.isfinite(chance_loss) else min(max(peak), 2 * chance_loss)
    for ax in loss_axes:  # one loss scale, cut at twice the chance loss if a run blew up
        ax.set_ylim(0, 1.05 * top)
    cols = [f"train loss\ndepth {d}" for d in chosen] + [f"val accuracy\ndepth {d}" for d in chosen]
    _label(axes, acts, cols, "training step", "")
    used["chance (loss ln K, accuracy 1/K; K classes)"] = dict(color="0.5", ls=":")
    _legend(fig, used, "variant (selected lr)")
    fig.suptitle(
        "Training curves at the selected lr: plain vs the best remedy\n"
        "(mean, 95% CI band over seeds)"
    )
    return fig


def plot_function(name: str):
    """``plot_<name>`` of this module or of ``figures_gradients``."""
    fn = globals().get(f"plot_{name}") or getattr(figures_gradients, f"plot_{name}", None)
    if fn is None:
        raise KeyError(f"figure {name!r} has no plot_{name} function")
    return fn


def restrict(tables: dict[str, pd.DataFrame | None]) -> tuple[dict, str]:
    """Keep one value of each setting outside activation x depth x norm x residual that varies
    (the commonest combination in ``selected``), so a panel never mixes, e.g., two widths.

    Returns the filtered tables and a note naming what was kept ("" when nothing varies).
    """
    ref = next(
        (tables[n] for n in ("selected", "summary", "layer_gradients") if tables[n] is not None),
        None,
    )
    if ref is None or ref.empty:
        return tables, ""
    varying = [k for k in OTHER_KEYS if k in ref.columns and ref[k].nunique(dropna=False) > 1]
    if not varying:
        return tables, ""
    combo = ref.groupby(varying, dropna=False).size().idxmax()
    keep = dict(zip(varying, combo if len(varying) > 1 else (combo,), strict=True))
    out = {}
    for name, df in tables.items():
        if df is not None:
            for k, v in keep.items():
                if k in df.columns:
                    df = df[df[k].isna()] if pd.isna(v) else df[df[k] == v]
        out[name] = df
    note = "shown: " + ", ".join(f"{k}={v}" for k, v in keep.items()) + " (others in the tables)"
    return out, note


def build_figures(tables: dict[str, pd.DataFrame | None]) -> dict[str, Figure]:
    """Every figure of the catalog by name, from tables by name (None: missing); a figure whose
    tables are missing or insufficient is a ``placeholder`` (its label is ``placeholder``)."""
    tables, note = restrict({name: tables.get(name) for name in catalog.TABLES})
    figs = {}
    for spec in catalog.FIGURES:
        name = spec.name
        missing = [f"{n}.csv" for n in spec.tables if tables[n] is None]
        try:
            if missing:
                raise MissingData(f"missing {', '.join(missing)} (run `vanishing stats` first?)")
            figs[name] = plot_function(name)(*(tables[n] for n in spec.tables))
            if note:
                figs[name].suptitle(f"{figs[name].get_suptitle()}\n{note}")
        except MissingData as e:
            figs[name] = placeholder(name, str(e))
    return figs


def write_all(tables_dir: Path, out_dir: Path) -> list[Path]:
    """Write every figure as ``{name}.png`` and ``{name}.pdf`` into out_dir, from the tables in
    tables_dir (``layer_gradients``, ``curves``, ``summary``, ``selected``,
    ``theory_profiles``); return the paths, two per catalog entry, in catalog order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in build_figures(read_tables(tables_dir, catalog.TABLES)).items():
        paths += save(fig, out_dir, name)
    return paths
