"""The figures of the claims about the remedies and the theory (claims 7-11).

Each ``plot_*`` takes the tables the catalog names (already restricted to the claim's sub-grid),
returns a ``matplotlib.figure.Figure`` and raises ``MissingData`` when the tables cannot support
it.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vanishing.analysis.metrics import WINDOW_POINTS
from vanishing.report import profiles
from vanishing.report.plotting import (
    ACTIVATIONS,
    AXES,
    MissingData,
    add_legend,
    chance_line,
    depth_axis,
    draw_errorbar,
    facet_grid,
    label_facets,
    levels_of,
    need_columns,
    select_rows,
    styled,
    variant_label,
    variant_style,
    variants_of,
)  # fmt: skip

NO_SKIP = dict(residual=False)


def _deepest_per_activation(df: pd.DataFrame, n: int = 1) -> list[tuple[str, int]]:
    """(activation, depth) of the ``n`` largest depths each activation has."""
    out = []
    for a in levels_of(df["activation"], ACTIVATIONS):
        depths = sorted(select_rows(df, activation=a)["depth"].unique())[-n:]
        out += [(a, int(d)) for d in depths]
    return out


def _norm_panels(df: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, title: str,
                 logx: bool = False) -> Figure:  # fmt: skip
    """One panel per (activation, deepest depth) of nets without a skip: ``y`` against ``x``,
    a line per norm."""
    panels = _deepest_per_activation(df)
    if not panels:
        raise MissingData("no nets without residual connections")
    fig, axes = facet_grid(1, len(panels), w=2.6, h=2.4, sharey=True)
    norms = []
    for j, (a, d) in enumerate(panels):
        ax = axes[0, j]
        ax.set_gid(f"{a}|depth={d}")
        for n, _ in variants_of(select_rows(df, activation=a, depth=d)):
            s = select_rows(df, activation=a, depth=d, norm=n).sort_values(x)
            ax.plot(s[x], s[y], marker=".", **variant_style(n, False), gid=n)
            norms.append(n)
        if logx:
            ax.set_xscale("log")
        ax.set_title(f"{a}, depth {d}")
    label_facets(axes, [""], ["" for _ in panels], xlabel, ylabel)
    add_legend(
        fig, {variant_label(n, False): variant_style(n, False) for n in dict.fromkeys(norms)}
    )
    fig.suptitle(title)
    return fig


@styled
def plot_lr_window(summary: pd.DataFrame) -> Figure:
    """Validation accuracy (mean over seeds) against the learning rate, without and with batch
    norm, for the deepest nets without skips; the band marks rates within one point of a
    curve's best (the lr window)."""
    need_columns(summary, [*AXES, "lr", "final_val_accuracy_mean"], "summary")
    df = select_rows(summary, **NO_SKIP)
    fig = _norm_panels(df, "lr", "final_val_accuracy_mean", "learning rate",
                       "validation accuracy", "Batch norm and the learning-rate window",
                       logx=True)  # fmt: skip
    for ax in fig.axes:
        if not ax.get_gid():
            continue
        for line in ax.get_lines():
            y = line.get_ydata().astype(float)
            if np.isfinite(y).any():
                best = np.nanmax(y)
                ax.axhspan(best - WINDOW_POINTS, best, color=line.get_color(), alpha=0.15)
        chance_line(ax, summary, ls=":")
        ax.set_ylim(0, 1.02)
    return fig


@styled
def plot_steps_to_target(survival_curves: pd.DataFrame) -> Figure:
    """The fraction of runs that have reached the target validation accuracy by each step
    (Kaplan-Meier, runs that never get there censored; ``survival_curves``), without and with
    batch norm, for the deepest nets without skips at each cell's selected lr."""
    need_columns(survival_curves, [*AXES, "step", "reached"], "survival_curves")
    df = select_rows(survival_curves, **NO_SKIP)
    fig = _norm_panels(df, "step", "reached", "training step", "fraction at target",
                       "Batch norm and the steps to the target accuracy")  # fmt: skip
    for ax in fig.axes:
        for line in ax.get_lines():
            line.set_drawstyle("steps-post")
        if ax.get_gid():
            ax.set_ylim(-0.02, 1.02)
    return fig


@styled
def plot_bn_flow(layer_gradients: pd.DataFrame, selected: pd.DataFrame) -> Figure:
    """Distance from balanced flow, |log10(layer-1 / top gradient)| (mean over seeds at the
    selected lr), against the probe step on a symmetric-log axis (the early probes are
    log-spaced), without and with batch norm, for the deepest nets without skips."""
    need_columns(layer_gradients, [*AXES, "cell", "lr", "step", "layer", "grad_preact_rms"],
          "layer_gradients")  # fmt: skip
    need_columns(selected, ["cell", "lr"], "selected")
    ratio = profiles.ratio_over_steps(select_rows(layer_gradients, **NO_SKIP), selected)
    if ratio.empty:
        raise MissingData("no nets without skips at the selected lrs")
    title = "Batch norm and gradient flow, from step 0"
    fig = _norm_panels(ratio, "step", "abs_log10_grad_ratio", "training step",
                       "|log10 grad ratio|", title)  # fmt: skip
    for ax in fig.axes:
        if ax.get_gid():
            ax.set_xscale("symlog", linthresh=1)
    return fig


@styled
def plot_residual_deep(selected: pd.DataFrame) -> Figure:
    """Very deep nets: test accuracy (top) and distance from balanced flow at init (bottom) at
    the selected lr (mean, 95% CI over seeds) against depth, one line per variant (plain, batch
    norm, residual, residual + batch norm); columns activation."""
    need_columns(selected, [*AXES, "final_test_accuracy_mean", "log10_grad_ratio_init_mean"],
          "selected")  # fmt: skip
    acts = levels_of(selected["activation"], ACTIVATIONS)
    variants = variants_of(selected)
    fig, axes = facet_grid(2, len(acts), w=2.6, h=2.3, sharex=True, sharey="row")
    for (i, metric), (j, a) in product(enumerate(("final_test_accuracy", "abs")),
                                        enumerate(acts)):  # fmt: skip
        ax = axes[i, j]
        for n, r in variants:
            s = select_rows(selected, activation=a, norm=n, residual=r).sort_values("depth")
            if metric == "abs":
                ax.plot(s["depth"], s["log10_grad_ratio_init_mean"].astype(float).abs(), marker="o",
                        **variant_style(n, r), gid=variant_label(n, r))  # fmt: skip
            else:
                m = s[[f"{metric}_{k}" for k in ("mean", "ci_low", "ci_high")]].to_numpy(float)
                draw_errorbar(ax, s["depth"], *m.T, **variant_style(n, r))
        depth_axis(ax, levels_of(selected["depth"]))
        if i == 0:
            chance_line(ax, selected)
            ax.set_ylim(0, 1.02)
            ax.set_title(a)
    label_facets(axes, ["test accuracy", "|log10 grad ratio| at init"], ["" for _ in acts],
           "depth (hidden layers)", "")  # fmt: skip
    add_legend(fig, {variant_label(*v): variant_style(*v) for v in variants}, "variant")
    fig.suptitle("Residual connections in very deep nets")
    return fig


@styled
def plot_theory_slopes(theory: pd.DataFrame) -> Figure:
    """Measured per-layer slope of log10 grad_preact_rms at init (mean, 95% CI over seeds)
    against the mean-field prediction, every group with a prediction (depth >= 8); the band is
    +-15% of the prediction. Colour: variant; marker: activation."""
    need_columns(
        theory, [*AXES, "predicted_slope", "measured_slope", "measured_slope_ci_low"], "theory"
    )
    th = theory[(theory["depth"] >= 8) & np.isfinite(theory["predicted_slope"].astype(float))]
    if th.empty:
        raise MissingData("theory has no predictions at depth >= 8")
    fig, axes = facet_grid(1, 1, w=4.2, h=4.0)
    ax = axes[0, 0]
    markers = dict(zip(ACTIVATIONS, "os^D", strict=False))
    for (n, r), a in product(variants_of(th), levels_of(th["activation"], ACTIVATIONS)):
        s = select_rows(th, norm=n, residual=r, activation=a)
        if s.empty:
            continue
        style = variant_style(n, r)
        draw_errorbar(ax, s["predicted_slope"], s["measured_slope"], s["measured_slope_ci_low"],
                  s["measured_slope_ci_high"], color=style["color"], ls="none")  # fmt: skip
        ax.lines[-1].set_marker(markers.get(a, "o"))
    lo = min(th["predicted_slope"].min(), th["measured_slope"].min())
    hi = max(th["predicted_slope"].max(), th["measured_slope"].max())
    x = np.linspace(lo, hi, 50)
    ax.plot(x, x, color="k", lw=1)
    ax.fill_between(x, x - 0.15 * np.abs(x), x + 0.15 * np.abs(x), color="0.8", alpha=0.5)
    ax.set_xlabel("predicted slope (decades per layer)")
    ax.set_ylabel("measured slope")
    entries = {variant_label(*v): dict(color=variant_style(*v)["color"], marker="o", ls="none")
               for v in variants_of(th)}  # fmt: skip
    entries.update({a: dict(color="0.3", marker=markers.get(a, "o"), ls="none")
                    for a in levels_of(th["activation"], ACTIVATIONS)})  # fmt: skip
    entries["+-15% of the prediction"] = dict(color="0.8", lw=6)
    add_legend(fig, entries)
    fig.suptitle("Mean-field theory against measurement, every group")
    return fig
