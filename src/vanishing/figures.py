"""The study's figures, drawn from the tables in ``results/tables/`` (no torch, no statistics).

Means and intervals come from ``summary.csv`` / ``selected.csv`` (``vanishing.stats``) and
``theory_profiles.csv`` (``vanishing.theory``); means over seeds of curves and layer profiles come
from ``vanishing.profiles``. A figure only selects rows and takes log10. Each ``plot_*`` returns a
``matplotlib.figure.Figure`` (Agg canvas, no pyplot state) and raises ``MissingData`` when the
tables cannot support it; ``write_all`` then writes a placeholder that says why.

Variants are (norm, residual) pairs, named ``plain``, ``residual``, ``batch norm``,
``batch norm + residual``, ...; depth is the number of hidden layers; layer 1 is nearest the input.
"""

from __future__ import annotations

import functools
from itertools import product
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from vanishing import profiles
from vanishing.stats import CELL_KEYS

ACTIVATIONS = ("sigmoid", "tanh", "relu", "gelu")
NORMS = ("none", "batch", "layer")
NORM_LABEL = {"none": "no norm", "batch": "batch norm", "layer": "layer norm"}
AXES = ("activation", "depth", "norm", "residual")
OTHER_KEYS = tuple(k for k in CELL_KEYS if k not in AXES)
_PAL = sns.color_palette("colorblind", 10)
ACT_COLOR = dict(zip(ACTIVATIONS, [_PAL[3], _PAL[1], _PAL[0], _PAL[2]], strict=True))
NORM_COLOR = {"none": "0.15", "batch": _PAL[0], "layer": _PAL[2]}
BOUNDS = ("mean", "ci_low", "ci_high")  # suffixes of an estimate's columns in the stats tables
DPI = 130
MIN_WIDTH = 6.5  # inches: room for a two-line title over one or two columns of panels
RC = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.1)}
RC.update({"axes.titlesize": "medium", "legend.frameon": False})


class MissingData(ValueError):
    """The tables lack what a figure needs; the message says what."""


def _styled(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with mpl.rc_context(RC):
            return fn(*args, **kwargs)

    return wrapper


def variant_label(norm: str, residual: bool) -> str:
    """``plain``, ``residual``, ``batch norm``, ``layer norm + residual``, ..."""
    parts = [] if norm == "none" else [NORM_LABEL.get(norm, str(norm))]
    return " + ".join([*parts, "residual"] if residual else parts) or "plain"


def variant_style(norm: str, residual: bool) -> dict:
    """Line style of a variant: colour by norm, dashed with a residual skip."""
    return dict(color=NORM_COLOR.get(norm, _PAL[7]), ls="--" if residual else "-")


def _levels(values, order=()) -> list:
    """Distinct values, those in ``order`` first in that order, the rest sorted."""
    present = list(pd.unique(pd.Series(values).dropna()))
    return [v for v in order if v in present] + sorted(v for v in present if v not in order)


def _variants(df: pd.DataFrame) -> list[tuple[str, bool]]:
    """(norm, residual) pairs present in df, in a fixed order."""
    pairs = set(zip(df["norm"], profiles.as_bool(df["residual"]), strict=True))
    return [(n, r) for n in _levels(df["norm"], NORMS) for r in (False, True) if (n, r) in pairs]


def _rows(df: pd.DataFrame, **where) -> pd.DataFrame:
    """Rows of df equal to every ``column=value`` given (``residual`` compared as bool)."""
    mask = np.ones(len(df), dtype=bool)
    for k, v in where.items():
        col = profiles.as_bool(df[k]) if k == "residual" else df[k]
        mask &= (col == v).to_numpy()
    return df[mask]


def _facets(nrows: int, ncols: int, w: float = 2.7, h: float = 2.2, **kw):
    size = (max(0.8 + w * ncols, MIN_WIDTH), 1.0 + h * nrows)
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _label(axes, rows: list[str], cols: list[str], xlabel: str, ylabel: str) -> None:
    """Column names as top titles, row names before the y label, one x label for the figure."""
    for j, c in enumerate(cols):
        axes[0, j].set_title(c, fontweight="bold")
    for i, r in enumerate(rows):
        axes[i, 0].set_ylabel(f"{r}\n{ylabel}" if r else ylabel)
    axes[0, 0].get_figure().supxlabel(xlabel, fontsize="medium")


def _legend(fig: Figure, entries: dict[str, dict], title: str | None = None) -> None:
    """A figure legend right of the panels, off the data; entries: label -> Line2D style."""
    handles = [Line2D([], [], **style) for style in entries.values()]
    fig.legend(handles, list(entries), loc="outside right center", title=title)


def _depth_axis(ax, depths) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(depths), [str(d) for d in depths])
    ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
    ax.set_xlim(min(depths) / 1.3, max(depths) * 1.3)


def _errorbar(ax, x, mean, low, high, **kw):
    """Points with interval bars from the table's own bounds (no bar where a bound is NaN)."""
    mean, low, high = (np.asarray(v, dtype=float) for v in (mean, low, high))
    err = np.nan_to_num(np.clip([mean - low, high - mean], 0, None))
    return ax.errorbar(x, mean, yerr=err, capsize=2, marker="o", ms=4, **kw)


def _chance(ax, table: pd.DataFrame, ls: str = "--") -> None:
    """Chance accuracy, 1 / n_classes, as a grey line behind the data."""
    if "n_classes" in table.columns and table["n_classes"].notna().any():
        ax.axhline(1 / table["n_classes"].max(), ls=ls, lw=1.2, color="0.5", zorder=0)


def _need(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MissingData(f"{what} lacks columns {', '.join(missing)}")
    if df.empty:
        raise MissingData(f"{what} has no rows")


@_styled
def placeholder(name: str, reason: str) -> Figure:
    """A small figure that says which figure was skipped and why."""
    fig, axes = _facets(1, 1, w=6, h=1.6)
    fig.set_label("placeholder")
    axes[0, 0].set_axis_off()
    axes[0, 0].text(0.5, 0.5, f"{name}: skipped\n{reason}", ha="center", va="center", wrap=True)
    return fig


@_styled
def plot_trainability(selected: pd.DataFrame) -> Figure:
    """Final test accuracy at each cell's selected lr (mean, 95% CI) against depth, a line per
    activation; columns norm, rows residual. Open circles: the selected lr is at the grid's edge."""
    _need(selected, [*AXES, "final_test_accuracy_mean", "final_test_accuracy_ci_low"], "selected")
    return _per_depth(selected, "final_test_accuracy", log=False)


@_styled
def plot_grad_ratio_init(selected: pd.DataFrame) -> Figure:
    """grad_ratio_init (layer 1 over layer ``depth``, step 0) against depth on a log axis: 10 to
    the mean and CI of ``log10_grad_ratio_init`` (a geometric mean), a line per activation."""
    _need(selected, [*AXES, "log10_grad_ratio_init_mean"], "selected")
    if not np.isfinite(selected["log10_grad_ratio_init_mean"].astype(float)).any():
        raise MissingData("no finite log10_grad_ratio_init_mean")
    return _per_depth(selected, "log10_grad_ratio_init", log=True)


def _per_depth(selected: pd.DataFrame, metric: str, log: bool) -> Figure:
    norms = _levels(selected["norm"], NORMS)
    residuals = _levels(profiles.as_bool(selected["residual"]))
    depths, acts = _levels(selected["depth"]), _levels(selected["activation"], ACTIVATIONS)
    fig, axes = _facets(len(residuals), len(norms), sharex=True, sharey=True)
    for (i, r), (j, n) in product(enumerate(residuals), enumerate(norms)):
        ax = axes[i, j]
        ax.set_gid(f"norm={n}|residual={r}")
        panel = _rows(selected, norm=n, residual=r)
        for a in acts:
            s = _rows(panel, activation=a).sort_values("depth")
            m, lo, hi = (s[f"{metric}_{k}"].to_numpy(dtype=float) for k in BOUNDS)
            if log:
                m, lo, hi = 10.0**m, 10.0**lo, 10.0**hi
            bars = _errorbar(ax, s["depth"], m, lo, hi, color=ACT_COLOR.get(a), label=a)
            bars.lines[0].set_gid(a)
            if not log and "lr_at_edge" in s.columns:
                edge = profiles.as_bool(s["lr_at_edge"]).to_numpy()
                style = dict(ms=4, mfc="white", color=ACT_COLOR.get(a), zorder=3)
                ax.plot(s["depth"].to_numpy()[edge], m[edge], "o", **style)
        if log:
            ax.axhline(1.0, ls=":", lw=1, color="0.4", zorder=0)
        else:
            _chance(ax, selected)
        _depth_axis(ax, depths)
    if log:
        axes[0, 0].set_yscale("log")
        ylabel = "grad_ratio_init\n(layer 1 / top layer)"
        title = "Gradient ratio at initialisation\n(< 1: the input side gets a smaller gradient)"
    else:
        axes[0, 0].set_ylim(0, 1.02)
        ylabel = "final test accuracy"
        title = "Trainability: test accuracy at each cell's selected lr\n(mean, 95% CI over seeds)"
    rows = ["residual" if r else "no residual" for r in residuals]
    _label(axes, rows, [NORM_LABEL.get(n, n) for n in norms], "depth (hidden layers)", ylabel)
    entries = {a: dict(color=ACT_COLOR.get(a), marker="o") for a in acts}
    if log:
        entries["ratio 1 (no decay)"] = dict(color="0.4", ls=":")
    else:
        entries["chance (1 / classes)"] = dict(color="0.5", ls="--")
        edge = dict(color="0.3", marker="o", mfc="white", ls="none")
        entries["selected lr at edge of sweep"] = edge
    _legend(fig, entries, "activation")
    fig.suptitle(title)
    return fig


def _depth_colors(depths) -> dict:
    """Depth -> colour on a sequential scale (light: shallow, dark: deep)."""
    return dict(zip(depths, sns.color_palette("crest", len(depths)), strict=True))


@_styled
def plot_gradient_profile_init(layers: pd.DataFrame) -> Figure:
    """log10 grad_preact_rms at step 0 against layer, mean over seeds (``profiles.init_profiles``),
    a line per depth; rows activation, columns variant; one y scale for every panel."""
    _need(layers, [*AXES, "cell", "seed", "step", "layer", "grad_preact_rms"], "layer_gradients")
    prof = profiles.init_profiles(layers)
    if prof.empty:
        raise MissingData("layer_gradients has no step-0 rows")
    acts, variants = _levels(prof["activation"], ACTIVATIONS), _variants(prof)
    depths = _levels(prof["depth"])
    colors = _depth_colors(depths)
    fig, axes = _facets(len(acts), len(variants), sharex=True, sharey=True)
    for (i, a), (j, (n, r)) in product(enumerate(acts), enumerate(variants)):
        ax = axes[i, j]
        ax.set_gid(f"{a}|{variant_label(n, r)}")
        for d in depths:
            s = _rows(prof, activation=a, norm=n, residual=r, depth=d).sort_values("layer")
            y = s["log10_grad_preact_rms"]
            ax.plot(s["layer"], y, marker=".", ms=4, color=colors[d], gid=f"depth={d}")
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    cols = [variant_label(*v) for v in variants]
    _label(axes, acts, cols, "layer (1 = input side)", "log10 grad_preact_rms")
    _legend(fig, {str(d): dict(color=colors[d], marker=".") for d in depths}, "depth")
    fig.suptitle("Gradient per layer at initialisation (step 0, mean over seeds of log10)")
    return fig


@_styled
def plot_lr_sweep(summary: pd.DataFrame) -> Figure:
    """Final test accuracy (mean over seeds) against lr, a line per depth; rows activation,
    columns variant; a star marks each cell's selected lr (best mean validation accuracy)."""
    _need(summary, [*AXES, "lr", "final_test_accuracy_mean", "selected"], "summary")
    acts, variants = _levels(summary["activation"], ACTIVATIONS), _variants(summary)
    depths = _levels(summary["depth"])
    colors = _depth_colors(depths)
    fig, axes = _facets(len(acts), len(variants), sharex=True, sharey=True)
    for (i, a), (j, (n, r)) in product(enumerate(acts), enumerate(variants)):
        ax = axes[i, j]
        ax.set_gid(f"{a}|{variant_label(n, r)}")
        for d in depths:
            s = _rows(summary, activation=a, norm=n, residual=r, depth=d).sort_values("lr")
            y = s["final_test_accuracy_mean"]
            ax.plot(s["lr"], y, marker=".", ms=4, color=colors[d], gid=f"depth={d}")
            best = profiles.as_bool(s["selected"]).to_numpy()
            ax.plot(
                s["lr"][best],
                y[best],
                "*",
                ms=9,
                color=colors[d],
                mec="k",
                mew=0.5,
                gid=f"selected depth={d}",
            )
        _chance(ax, summary)
    axes[0, 0].set_xscale("log")
    axes[0, 0].set_ylim(0, 1.02)
    _label(
        axes, acts, [variant_label(*v) for v in variants], "learning rate", "final test accuracy"
    )
    entries = {str(d): dict(color=colors[d], marker=".") for d in depths}
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


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges (n + 1,) around sorted centres (n,): midpoints, ends mirrored; +-0.5 for one."""
    c = np.asarray(centres, dtype=float)
    if len(c) == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])


def _contrast_cells(df: pd.DataFrame) -> list[tuple[str, str, bool]]:
    """Up to four (activation, norm, residual) cells that contrast: a saturating activation plain,
    with a norm, with a skip, and a rectifying one plain; whichever the grid has."""
    acts = _levels(df["activation"], ACTIVATIONS)
    sat = next((a for a in ("sigmoid", "tanh") if a in acts), acts[0])
    rect = next((a for a in ("relu", "gelu") if a in acts and a != sat), None)
    norm = next((n for n in ("batch", "layer") if n in set(df["norm"])), "none")
    wanted = [(sat, "none", False), (sat, norm, False), (sat, "none", True), (rect, "none", False)]
    present = set(zip(df["activation"], df["norm"], profiles.as_bool(df["residual"]), strict=True))
    cells = list(dict.fromkeys(c for c in wanted if c in present))
    return cells or sorted(present)[:4]


@_styled
def plot_gradient_flow_heatmap(layers: pd.DataFrame, selected: pd.DataFrame) -> Figure:
    """Layer x step heatmaps of log10 grad_preact_rms (mean over seeds at the selected lr;
    ``profiles.gradient_flow``) for contrasting cells at the deepest depth, one colour scale."""
    _need(layers, [*AXES, "cell", "lr", "step", "layer", "grad_preact_rms"], "layer_gradients")
    _need(selected, ["cell", "lr"], "selected")
    flow = profiles.gradient_flow(layers, selected)
    if flow.empty:
        raise MissingData("layer_gradients has no runs at the selected lrs")
    deep = flow[flow["depth"] == flow["depth"].max()]
    cells = _contrast_cells(deep)
    shown = pd.concat([_rows(deep, activation=a, norm=n, residual=r) for a, n, r in cells])
    values = shown["log10_grad_preact_rms"].to_numpy(dtype=float)
    if not np.isfinite(values).any():
        raise MissingData("no positive grad_preact_rms at the deepest depth")
    vmin, vmax = np.nanmin(values), np.nanmax(values)
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    fig, axes = _facets(1, len(cells), w=3.0, h=2.9, sharey=True)
    for j, (a, n, r) in enumerate(cells):
        ax = axes[0, j]
        s = _rows(deep, activation=a, norm=n, residual=r)
        z = s.pivot_table(
            index="layer", columns="step", values="log10_grad_preact_rms", dropna=False
        )
        x, y = _edges(z.columns.to_numpy()), _edges(z.index.to_numpy())
        mesh = ax.pcolormesh(x, y, z.to_numpy(), vmin=vmin, vmax=vmax, cmap="magma")
        mesh.set_gid(f"{a}|{variant_label(n, r)}")
        ax.set_title(f"{a}, {variant_label(n, r)}\n(lr {s['lr'].iloc[0]:g})")
        ax.grid(False)
    axes[0, 0].set_ylabel(f"layer (1 = input side, {int(deep['depth'].iloc[0])} = top)")
    axes[0, 0].yaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    fig.supxlabel("training step", fontsize="medium")
    fig.colorbar(mesh, ax=list(axes.ravel()), label="log10 grad_preact_rms\n(mean over seeds)")
    fig.suptitle(f"Gradient flow during training, depth {int(deep['depth'].iloc[0])}")
    return fig


@_styled
def plot_saturation(layers: pd.DataFrame, selected: pd.DataFrame) -> Figure:
    """Saturated (sigmoid, tanh) or dead (relu, gelu) fraction per layer at step 0 and at the end
    of training (selected lr, mean over seeds) at the deepest depth; a line per variant."""
    _need(layers, [*AXES, "cell", "lr", "step", "layer", "saturation"], "layer_gradients")
    _need(selected, ["cell", "lr"], "selected")
    sat = profiles.saturation_profiles(layers, selected)
    if sat.empty:
        raise MissingData("layer_gradients has no runs at the selected lrs")
    sat = sat[sat["depth"] == sat["depth"].max()]
    acts, variants = _levels(sat["activation"], ACTIVATIONS), _variants(sat)
    fig, axes = _facets(2, len(acts), sharex=True, sharey=True)
    for (i, stage), (j, a) in product(enumerate(("init", "final")), enumerate(acts)):
        ax = axes[i, j]
        ax.set_gid(f"{stage}|{a}")
        for n, r in variants:
            s = _rows(sat, activation=a, norm=n, residual=r, stage=stage).sort_values("layer")
            style = variant_style(n, r)
            ax.plot(s["layer"], s["saturation"], marker=".", ms=4, **style, gid=variant_label(n, r))
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    axes[0, 0].set_ylim(-0.02, 1.02)
    kind = {a: "saturated" if a in ("sigmoid", "tanh") else "dead" for a in acts}
    cols = [f"{a}\n({kind[a]} units)" for a in acts]
    _label(axes, ["step 0", "end of training"], cols, "layer (1 = input side)", "fraction")
    _legend(fig, {variant_label(*v): variant_style(*v) for v in variants}, "variant")
    depth = int(sat["depth"].iloc[0])
    fig.suptitle(
        f"Saturated or dead units per layer, depth {depth}\n(selected lr, mean over seeds)"
    )
    return fig


@_styled
def plot_theory_overlay(theory: pd.DataFrame) -> Figure:
    """Mean-field prediction (dashed) against the measured step-0 profile (solid) of log10
    grad_preact_rms relative to the top layer, plain nets; rows activation, columns depth."""
    cols = [*AXES, "layer", "predicted_log10_rms", "measured_log10_rms"]
    _need(theory, cols, "theory_profiles")
    plain = _rows(theory, norm="none", residual=False)
    if plain.empty:
        raise MissingData("theory_profiles has no plain nets (norm none, no residual)")
    acts, depths = _levels(plain["activation"], ACTIVATIONS), _levels(plain["depth"])
    fig, axes = _facets(len(acts), len(depths), w=2.4, sharex="col", sharey="row")
    for (i, a), (j, d) in product(enumerate(acts), enumerate(depths)):
        ax = axes[i, j]
        ax.set_gid(f"{a}|depth={d}")
        s = _rows(plain, activation=a, depth=d).sort_values("layer")
        ax.plot(
            s["layer"],
            s["measured_log10_rms"],
            marker=".",
            ms=4,
            color=ACT_COLOR.get(a),
            gid="measured",
        )
        ax.plot(s["layer"], s["predicted_log10_rms"], ls="--", color="k", gid="predicted")
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    for row in axes:  # at least one decade per row, so a flat profile looks flat
        low, high = row[0].get_ylim()
        if high - low < 1.0:
            mid = (low + high) / 2
            row[0].set_ylim(mid - 0.5, mid + 0.5)
    ylabel = "log10 grad_preact_rms\nrelative to top layer"
    _label(axes, acts, [f"depth {d}" for d in depths], "layer (1 = input side)", ylabel)
    entries = {f"measured, {a}": dict(color=ACT_COLOR.get(a), marker=".") for a in acts}
    entries["mean-field prediction"] = dict(color="k", ls="--")
    _legend(fig, entries, "plain nets, step 0")
    fig.suptitle(
        "Mean-field theory vs measurement at initialisation\n"
        "(y scale shared within a row, at least one decade tall)"
    )
    return fig


FIGURES = {
    "trainability": (plot_trainability, ("selected",)),
    "gradient_profile_init": (plot_gradient_profile_init, ("layer_gradients",)),
    "grad_ratio_init": (plot_grad_ratio_init, ("selected",)),
    "lr_sweep": (plot_lr_sweep, ("summary",)),
    "training_curves": (plot_training_curves, ("curves", "selected")),
    "gradient_flow_heatmap": (plot_gradient_flow_heatmap, ("layer_gradients", "selected")),
    "saturation": (plot_saturation, ("layer_gradients", "selected")),
    "theory_overlay": (plot_theory_overlay, ("theory_profiles",)),
}
TABLES = ("layer_gradients", "curves", "summary", "selected", "theory_profiles")


def read_tables(tables_dir: Path) -> dict[str, pd.DataFrame | None]:
    """The tables figures read, by name; None for a file that does not exist."""
    paths = {name: Path(tables_dir) / f"{name}.csv" for name in TABLES}
    return {name: pd.read_csv(p) if p.exists() else None for name, p in paths.items()}


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


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``{name}.png`` (dpi ``DPI``) and ``{name}.pdf`` into out_dir; return both paths."""
    paths = [Path(out_dir) / f"{name}.{ext}" for ext in ("png", "pdf")]
    for p in paths:
        fig.savefig(p, dpi=DPI)
    return paths


def build_figures(tables: dict[str, pd.DataFrame | None]) -> dict[str, Figure]:
    """Every figure of ``FIGURES`` by name, from tables by name (None: missing); a figure whose
    tables are missing or insufficient is a ``placeholder`` (its label is ``placeholder``)."""
    tables, note = restrict({name: tables.get(name) for name in TABLES})
    figs = {}
    for name, (plot, needs) in FIGURES.items():
        missing = [f"{n}.csv" for n in needs if tables[n] is None]
        try:
            if missing:
                raise MissingData(f"missing {', '.join(missing)} (run `vanishing stats` first?)")
            figs[name] = plot(*(tables[n] for n in needs))
            if note:
                figs[name].suptitle(f"{figs[name].get_suptitle()}\n{note}")
        except MissingData as e:
            figs[name] = placeholder(name, str(e))
    return figs


def write_all(tables_dir: Path, out_dir: Path) -> list[Path]:
    """Write every figure as ``{name}.png`` and ``{name}.pdf`` into out_dir, from the tables in
    tables_dir (``layer_gradients``, ``curves``, ``summary``, ``selected``,
    ``theory_profiles``); return the paths, two per name of ``FIGURES``, in that order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in build_figures(read_tables(tables_dir)).items():
        paths += save(fig, out_dir, name)
    return paths
