"""Shared pieces of the study's figures: facets, labels, legends, colours, the style, placeholders.

``vanishing.report.figures`` and ``vanishing.report.figures_gradients`` draw with these; nothing
here reads a table from disk or computes a statistic. Variants are (norm, residual) pairs, named
``plain``, ``residual``, ``batch norm``, ``batch norm + residual``, ...; depth is the number of
hidden layers.
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

from vanishing import activations
from vanishing.report import profiles
from vanishing.settings import ARCH_AXES as AXES
from vanishing.settings import CELL_KEYS, NORMS

ACTIVATIONS = activations.NAMES
NORM_LABEL = {"none": "no norm", "batch": "batch norm", "layer": "layer norm"}
OTHER_KEYS = tuple(k for k in CELL_KEYS if k not in AXES)
PALETTE = sns.color_palette("colorblind", 10)
ACT_COLOR = {name: PALETTE[spec.color] for name, spec in activations.ACTIVATIONS.items()}
NORM_COLOR = {"none": "0.15", "batch": PALETTE[0], "layer": PALETTE[2]}
BOUNDS = ("mean", "ci_low", "ci_high")  # suffixes of an estimate's columns in the stats tables
DPI = 130
MIN_WIDTH = 6.5  # inches: room for a two-line title over one or two columns of panels
RC = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper", font_scale=1.1)}
RC.update({"axes.titlesize": "medium", "legend.frameon": False})


class MissingData(ValueError):
    """The tables lack what a figure needs; the message says what."""


def styled(fn):
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
    return dict(color=NORM_COLOR.get(norm, PALETTE[7]), ls="--" if residual else "-")


def levels_of(values, order=()) -> list:
    """Distinct values, those in ``order`` first in that order, the rest sorted."""
    present = list(pd.unique(pd.Series(values).dropna()))
    return [v for v in order if v in present] + sorted(v for v in present if v not in order)


def variants_of(df: pd.DataFrame) -> list[tuple[str, bool]]:
    """(norm, residual) pairs present in df, in a fixed order."""
    pairs = set(zip(df["norm"], profiles.as_bool(df["residual"]), strict=True))
    return [(n, r) for n in levels_of(df["norm"], NORMS) for r in (False, True) if (n, r) in pairs]


def select_rows(df: pd.DataFrame, **where) -> pd.DataFrame:
    """Rows of df equal to every ``column=value`` given (``residual`` compared as bool)."""
    mask = np.ones(len(df), dtype=bool)
    for k, v in where.items():
        col = profiles.as_bool(df[k]) if k == "residual" else df[k]
        mask &= (col == v).to_numpy()
    return df[mask]


def facet_grid(nrows: int, ncols: int, w: float = 2.7, h: float = 2.2, **kw):
    size = (max(0.8 + w * ncols, MIN_WIDTH), 1.0 + h * nrows)
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def label_facets(axes, rows: list[str], cols: list[str], xlabel: str, ylabel: str) -> None:
    """Column names as top titles, row names before the y label, one x label for the figure."""
    for j, c in enumerate(cols):
        axes[0, j].set_title(c, fontweight="bold")
    for i, r in enumerate(rows):
        axes[i, 0].set_ylabel(f"{r}\n{ylabel}" if r else ylabel)
    axes[0, 0].get_figure().supxlabel(xlabel, fontsize="medium")


def add_legend(fig: Figure, entries: dict[str, dict], title: str | None = None) -> None:
    """A figure legend right of the panels, off the data; entries: label -> Line2D style."""
    handles = [Line2D([], [], **style) for style in entries.values()]
    fig.legend(handles, list(entries), loc="outside right center", title=title)


def depth_axis(ax, depths) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(depths), [str(d) for d in depths])
    ax.xaxis.set_minor_locator(mpl.ticker.NullLocator())
    ax.set_xlim(min(depths) / 1.3, max(depths) * 1.3)


def draw_errorbar(ax, x, mean, low, high, **kw):
    """Points with interval bars from the table's own bounds (no bar where a bound is NaN)."""
    mean, low, high = (np.asarray(v, dtype=float) for v in (mean, low, high))
    err = np.nan_to_num(np.clip([mean - low, high - mean], 0, None))
    return ax.errorbar(x, mean, yerr=err, capsize=2, marker="o", ms=4, **kw)


def chance_line(ax, table: pd.DataFrame, ls: str = "--") -> None:
    """Chance accuracy, 1 / n_classes, as a grey line behind the data."""
    if "n_classes" in table.columns and table["n_classes"].notna().any():
        ax.axhline(1 / table["n_classes"].max(), ls=ls, lw=1.2, color="0.5", zorder=0)


def need_columns(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MissingData(f"{what} lacks columns {', '.join(missing)}")
    if df.empty:
        raise MissingData(f"{what} has no rows")


@styled
def placeholder(name: str, reason: str) -> Figure:
    """A small figure that says which figure was skipped and why."""
    fig, axes = facet_grid(1, 1, w=6, h=1.6)
    fig.set_label("placeholder")
    axes[0, 0].set_axis_off()
    axes[0, 0].text(0.5, 0.5, f"{name}: skipped\n{reason}", ha="center", va="center", wrap=True)
    return fig


def per_depth_figure(selected: pd.DataFrame, metric: str, log: bool) -> Figure:
    norms = levels_of(selected["norm"], NORMS)
    residuals = levels_of(profiles.as_bool(selected["residual"]))
    depths, acts = levels_of(selected["depth"]), levels_of(selected["activation"], ACTIVATIONS)
    fig, axes = facet_grid(len(residuals), len(norms), sharex=True, sharey=True)
    for (i, r), (j, n) in product(enumerate(residuals), enumerate(norms)):
        ax = axes[i, j]
        ax.set_gid(f"norm={n}|residual={r}")
        panel = select_rows(selected, norm=n, residual=r)
        for a in acts:
            s = select_rows(panel, activation=a).sort_values("depth")
            m, lo, hi = (s[f"{metric}_{k}"].to_numpy(dtype=float) for k in BOUNDS)
            if log:
                m, lo, hi = 10.0**m, 10.0**lo, 10.0**hi
            bars = draw_errorbar(ax, s["depth"], m, lo, hi, color=ACT_COLOR.get(a), label=a)
            bars.lines[0].set_gid(a)
            if not log and "lr_at_edge" in s.columns:
                edge = profiles.as_bool(s["lr_at_edge"]).to_numpy()
                style = dict(ms=4, mfc="white", color=ACT_COLOR.get(a), zorder=3)
                ax.plot(s["depth"].to_numpy()[edge], m[edge], "o", **style)
        if log:
            ax.axhline(1.0, ls=":", lw=1, color="0.4", zorder=0)
        else:
            chance_line(ax, selected)
        depth_axis(ax, depths)
    if log:
        axes[0, 0].set_yscale("log")
        ylabel = "grad_ratio_init\n(layer 1 / top layer)"
        title = "Gradient ratio at initialisation\n(< 1: the input side gets a smaller gradient)"
    else:
        axes[0, 0].set_ylim(0, 1.02)
        ylabel = "final test accuracy"
        title = "Trainability: test accuracy at each cell's selected lr\n(mean, 95% CI over seeds)"
    rows = ["residual" if r else "no residual" for r in residuals]
    label_facets(axes, rows, [NORM_LABEL.get(n, n) for n in norms], "depth (hidden layers)", ylabel)
    entries = {a: dict(color=ACT_COLOR.get(a), marker="o") for a in acts}
    if log:
        entries["ratio 1 (no decay)"] = dict(color="0.4", ls=":")
    else:
        entries["chance (1 / classes)"] = dict(color="0.5", ls="--")
        edge = dict(color="0.3", marker="o", mfc="white", ls="none")
        entries["selected lr at edge of sweep"] = edge
    add_legend(fig, entries, "activation")
    fig.suptitle(title)
    return fig


def depth_lines(df: pd.DataFrame, x: str, y: str):
    """Facets (rows activation, columns variant) with one line of ``y`` against ``x`` per depth.

    Returns (fig, axes, acts, variants, colors, drawn) where ``drawn`` maps
    (row, column, depth) to the rows plotted there, sorted by ``x``, for extra marks.
    """
    acts, variants = levels_of(df["activation"], ACTIVATIONS), variants_of(df)
    depths = levels_of(df["depth"])
    colors = depth_colors(depths)
    fig, axes = facet_grid(len(acts), len(variants), sharex=True, sharey=True)
    drawn = {}
    for (i, a), (j, (n, r)) in product(enumerate(acts), enumerate(variants)):
        ax = axes[i, j]
        ax.set_gid(f"{a}|{variant_label(n, r)}")
        for d in depths:
            rows = select_rows(df, activation=a, norm=n, residual=r, depth=d).sort_values(x)
            ax.plot(rows[x], rows[y], marker=".", ms=4, color=colors[d], gid=f"depth={d}")
            drawn[i, j, d] = rows
    return fig, axes, acts, variants, colors, drawn


def bin_edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges (n + 1,) around sorted centres (n,): midpoints, ends mirrored; +-0.5 for one."""
    c = np.asarray(centres, dtype=float)
    if len(c) == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[2 * c[0] - mid[0]], mid, [2 * c[-1] - mid[-1]]])


def depth_colors(depths) -> dict:
    """Depth -> colour on a sequential scale (light: shallow, dark: deep)."""
    return dict(zip(depths, sns.color_palette("crest", len(depths)), strict=True))


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    """Write ``{name}.png`` (dpi ``DPI``) and ``{name}.pdf`` into out_dir; return both paths. The
    constrained layout is solved once, for the PNG; the PDF keeps the axes where it put them
    (solving it again costs as much as drawing the PDF)."""
    png, pdf = (Path(out_dir) / f"{name}.{ext}" for ext in ("png", "pdf"))
    fig.savefig(png, dpi=DPI)
    fig.set_layout_engine("none")
    fig.savefig(pdf, dpi=DPI)
    return [png, pdf]
