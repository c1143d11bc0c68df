"""The study's figures, drawn from the tables in ``results/tables/`` (no torch, no statistics).

Means and intervals come from ``summary.csv`` / ``selected.csv`` (``vanishing.analysis.stats``)
and ``theory_profiles.csv`` (``vanishing.analysis.theory``); means over seeds of curves and layer
profiles come from ``vanishing.report.profiles``. A figure only selects rows and takes log10.
Each ``plot_*`` returns a ``matplotlib.figure.Figure`` (Agg canvas, no pyplot state) and raises
``MissingData`` when the tables cannot support it; ``write_all`` then writes a placeholder
that says why.

Variants are (norm, residual) pairs, named ``plain``, ``residual``, ``batch norm``,
``batch norm + residual``, ...; depth is the number of hidden layers; layer 1 is nearest the input.

The trainability, lr-sweep and training-curve figures live here, the gradient figures in
``vanishing.report.figures_gradients``, the claims' and remedies' in ``figures_claims`` and
``figures_remedies``, and the helpers they share in ``vanishing.report.plotting``; the list of
figures (names, captions) is ``vanishing.report.catalog``.
"""

from __future__ import annotations

from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vanishing.analysis.tables import read_tables
from vanishing.report import (
    catalog,
    figures_claims,
    figures_criticality,
    figures_gradients,
    figures_remedies,
    figures_time,
    profiles,
)
from vanishing.report.plotting import (
    ACTIVATIONS,
    AXES,
    OTHER_KEYS,
    MissingData,
    add_legend,
    chance_line,
    depth_lines,
    facet_grid,
    label_facets,
    levels_of,
    need_columns,
    per_depth_figure,
    placeholder,
    save,
    select_rows,
    styled,
    variant_label,
    variant_style,
    variants_of,
)
from vanishing.settings import BY_NAME


@styled
def plot_trainability(selected: pd.DataFrame) -> Figure:
    """Final test accuracy at each cell's selected lr (mean, 95% CI) against depth, a line per
    activation; columns norm, rows residual. Open circles: the selected lr is at the grid's edge."""
    need_columns(
        selected, [*AXES, "final_test_accuracy_mean", "final_test_accuracy_ci_low"], "selected"
    )
    return per_depth_figure(selected, "final_test_accuracy", log=False)


@styled
def plot_lr_sweep(summary: pd.DataFrame) -> Figure:
    """Final test accuracy (mean over seeds) against lr, a line per depth; rows activation,
    columns variant; a star marks each cell's selected lr (best mean validation accuracy)."""
    need_columns(summary, [*AXES, "lr", "final_test_accuracy_mean", "selected"], "summary")
    y = "final_test_accuracy_mean"
    fig, axes, acts, variants, colors, drawn = depth_lines(summary, "lr", y)
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
        chance_line(ax, summary)
    axes[0, 0].set_xscale("log")
    axes[0, 0].set_ylim(0, 1.02)
    label_facets(
        axes, acts, [variant_label(*v) for v in variants], "learning rate", "final test accuracy"
    )
    entries = {str(d): dict(color=c, marker=".") for d, c in colors.items()}
    entries["selected lr"] = dict(color="0.5", marker="*", ms=9, mec="k", mew=0.5, ls="none")
    entries["chance"] = dict(color="0.5", ls="--")
    add_legend(fig, entries, "depth")
    fig.suptitle("Learning-rate sweep: test accuracy, mean over seeds")
    return fig


def _shown_variants(selected: pd.DataFrame, activation: str) -> list[tuple[str, bool]]:
    """Plain and the remedy (another variant) with the best mean validation accuracy at the
    activation's deepest depth; either may be missing from the grid."""
    rows = select_rows(selected, activation=activation)
    deep = rows[rows["depth"] == rows["depth"].max()]
    variants = variants_of(deep)
    remedies = [v for v in variants if v != ("none", False)]
    shown = [("none", False)] if ("none", False) in variants else []
    if remedies:
        val = {
            v: select_rows(deep, norm=v[0], residual=v[1])["final_val_accuracy_mean"].max()
            for v in remedies
        }
        shown.append(max(remedies, key=lambda v: np.nan_to_num(val[v], nan=-1.0)))
    return shown


@styled
def plot_training_curves(curves: pd.DataFrame, selected: pd.DataFrame) -> Figure:
    """Train loss and validation accuracy against step (mean, 95% CI band over seeds;
    ``profiles.curve_bands``) at the selected lr, for the smallest, a middle and the largest
    depth; plain against the best remedy, per activation (rows)."""
    need_columns(curves, [*AXES, "cell", "lr", "step", "train_loss", "val_accuracy"], "curves")
    need_columns(selected, [*AXES, "cell", "lr", "final_val_accuracy_mean"], "selected")
    bands = profiles.curve_bands(curves, selected)
    if bands.empty:
        raise MissingData("curves has no runs at the selected lrs")
    depths = levels_of(bands["depth"])
    chosen = sorted({depths[0], depths[len(depths) // 2], depths[-1]})
    acts = levels_of(bands["activation"], ACTIVATIONS)
    fig, axes = facet_grid(len(acts), 2 * len(chosen), w=2.4, h=2.0, sharex=True)
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
                s = select_rows(bands, activation=a, depth=d, norm=n, residual=r).sort_values(
                    "step"
                )
                style, label = variant_style(n, r), variant_label(n, r)
                used[label] = style
                ax.plot(s["step"], s[f"{metric}_mean"], **style, gid=label)
                lo, hi = s[f"{metric}_ci_low"], s[f"{metric}_ci_high"]
                ax.fill_between(s["step"], lo, hi, color=style["color"], alpha=0.2, lw=0)
                if metric == "train_loss":
                    peak += [v for v in (*s["train_loss_mean"], *hi) if np.isfinite(v)]
            if metric == "val_accuracy":
                chance_line(ax, selected, ls=":")
                ax.set_ylim(0, 1.02)
            else:
                loss_axes.append(ax)
                if np.isfinite(chance_loss):
                    ax.axhline(chance_loss, ls=":", lw=1.2, color="0.5", zorder=0)
    top = max(peak) if not np.isfinite(chance_loss) else min(max(peak), 2 * chance_loss)
    for ax in loss_axes:  # one loss scale, cut at twice the chance loss if a run blew up
        ax.set_ylim(0, 1.05 * top)
    cols = [f"train loss\ndepth {d}" for d in chosen] + [f"val accuracy\ndepth {d}" for d in chosen]
    label_facets(axes, acts, cols, "training step", "")
    used["chance (loss ln K, accuracy 1/K; K classes)"] = dict(color="0.5", ls=":")
    add_legend(fig, used, "variant (selected lr)")
    fig.suptitle(
        "Training curves at the selected lr: plain vs the best remedy\n"
        "(mean, 95% CI band over seeds)"
    )
    return fig


def plot_function(name: str):
    """``plot_<name>`` of this module, ``figures_gradients``, ``figures_claims``,
    ``figures_remedies``, ``figures_time`` or ``figures_criticality``."""
    modules = (figures_gradients, figures_claims, figures_remedies, figures_time,
               figures_criticality)  # fmt: skip
    for module in modules:
        if hasattr(module, f"plot_{name}"):
            return getattr(module, f"plot_{name}")
    if f"plot_{name}" in globals():
        return globals()[f"plot_{name}"]
    raise KeyError(f"figure {name!r} has no plot_{name} function")


def grid_of(tables: dict[str, pd.DataFrame | None], preferred) -> tuple[str | None, list[str]]:
    """(the first of ``preferred`` sub-grids the study has, else its first; every sub-grid)."""
    runs = tables.get("run_metrics")
    if runs is not None and "grids" in runs:
        present = list(dict.fromkeys(g for gs in runs["grids"].astype(str) for g in gs.split()))
    else:
        present = list(dict.fromkeys(g for t in tables.values() if t is not None and "grid" in t
                                     for g in t["grid"].astype(str)))  # fmt: skip
    if not present:
        return None, []
    return next((g for g in preferred if g in present), present[0]), present


def in_grid(tables: dict[str, pd.DataFrame | None], names, grid: str | tuple | None) -> dict:
    """The tables ``names``, each restricted to sub-grid ``grid`` (or to any of a tuple of
    sub-grids): by its ``grid`` column, or (the raw per-run tables) by the cells that belong
    to it."""
    runs = tables.get("run_metrics")
    cells = None
    wanted = {grid} if isinstance(grid, str) else set(grid or ())
    if grid is not None and runs is not None and "grids" in runs:
        member = runs["grids"].astype(str).str.split().map(lambda gs: bool(wanted & set(gs)))
        cells = set(runs.loc[member, "cell"])
    out = {}
    for name in names:
        df = tables.get(name)
        if df is not None and grid is not None and "grid" in df:
            df = df[df["grid"].astype(str).isin(wanted)]
        elif df is not None and cells is not None and "cell" in df:
            df = df[df["cell"].isin(cells)]
        out[name] = df
    return out


def restrict(tables: dict[str, pd.DataFrame | None], varies=()) -> tuple[dict, str]:
    """Keep one value of each setting outside the four axes (and ``varies``) that varies (the
    commonest combination in the first non-empty table), so a panel never mixes, e.g., two
    widths. A setting that applies only with another (``residual_scale`` with ``residual``) is
    restricted among those rows only.

    Returns the filtered tables and a note naming what was kept ("" when nothing varies).
    """
    ref = next((t for t in tables.values() if t is not None and len(t)), None)
    if ref is None:
        return tables, ""
    keep = {}
    for k in OTHER_KEYS:
        if k in varies or k not in ref.columns:
            continue
        rows = ref
        only = BY_NAME[k].only_if
        if only and only in ref.columns:
            rows = ref[profiles.as_bool(ref[only])]
        if rows[k].nunique(dropna=False) > 1:
            keep[k] = rows[k].astype(str).value_counts().idxmax()
    if not keep:
        return tables, ""
    out = {}
    for name, df in tables.items():
        if df is not None:
            for k, v in keep.items():
                if k not in df.columns:
                    continue
                match = df[k].astype(str) == v
                only = BY_NAME[k].only_if
                if only and only in df.columns:
                    match |= ~profiles.as_bool(df[only])
                df = df[match]
        out[name] = df
    note = "shown: " + ", ".join(f"{k}={v}" for k, v in keep.items()) + " (others in the tables)"
    return out, note


def build_figures(tables: dict[str, pd.DataFrame | None], names=None) -> dict[str, Figure]:
    """Every figure of the catalog (or those ``names``) by name, from tables by name (None:
    missing), each drawn from
    its sub-grid (``FigureSpec.grids``; with ``together``, all of them the study has); a figure
    whose tables are missing or insufficient is a ``placeholder`` (its label is
    ``placeholder``)."""
    figs = {}
    for spec in catalog.FIGURES if names is None else [catalog.BY_NAME[n] for n in names]:
        name = spec.name
        grid, present = grid_of(tables, spec.grids)
        if spec.together:
            grid = tuple(g for g in spec.grids if g in present)
        chosen, note = restrict(in_grid(tables, spec.tables, grid), spec.varies)
        if grid is not None and len(present) > 1:
            shown = grid if isinstance(grid, str) else " + ".join(grid)
            note = f"sub-grid {shown}" + (f"; {note}" if note else "")
        missing = [f"{n}.csv" for n in spec.tables if chosen[n] is None]
        try:
            if spec.together and not grid:
                raise MissingData(f"the study has no sub-grid {' or '.join(spec.grids)}")
            if missing:
                raise MissingData(f"missing {', '.join(missing)} (run `vanishing stats` first?)")
            figs[name] = plot_function(name)(*(chosen[n] for n in spec.tables))
            if note:
                figs[name].suptitle(f"{figs[name].get_suptitle()}\n{note}")
        except MissingData as e:
            figs[name] = placeholder(name, str(e))
    return figs


def write_all(tables_dir: Path, out_dir: Path) -> list[Path]:
    """Write every figure as ``{name}.png`` and ``{name}.pdf`` into out_dir, from the tables in
    tables_dir (``catalog.TABLES``); return the paths, two per catalog entry, in catalog order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in build_figures(read_tables(tables_dir, catalog.TABLES)).items():
        paths += save(fig, out_dir, name)
    return paths
