"""Gradient figures: ratio and per-layer profile at initialisation, flow during training,
saturated or dead units, and the mean-field theory against measurement.

Each ``plot_*`` returns a ``matplotlib.figure.Figure`` and raises ``MissingData`` when the tables
cannot support it; layer 1 is nearest the input. ``vanishing.report.figures`` writes them.
"""

from __future__ import annotations

from itertools import product

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vanishing import activations
from vanishing.report import plotting, profiles


@plotting.styled
def plot_grad_ratio_init(selected: pd.DataFrame) -> Figure:
    """grad_ratio_init (layer 1 over layer ``depth``, step 0) against depth on a log axis: 10 to
    the mean and CI of ``log10_grad_ratio_init`` (a geometric mean), a line per activation."""
    plotting.need_columns(selected, [*plotting.AXES, "log10_grad_ratio_init_mean"], "selected")
    if not np.isfinite(selected["log10_grad_ratio_init_mean"].astype(float)).any():
        raise plotting.MissingData("no finite log10_grad_ratio_init_mean")
    return plotting.per_depth_figure(selected, "log10_grad_ratio_init", log=True)


@plotting.styled
def plot_gradient_profile_init(layers: pd.DataFrame) -> Figure:
    """log10 grad_preact_rms at step 0 against layer, mean over seeds (``profiles.init_profiles``),
    a line per depth; rows activation, columns variant; one y scale for every panel."""
    plotting.need_columns(
        layers,
        [*plotting.AXES, "cell", "seed", "step", "layer", "grad_preact_rms"],
        "layer_gradients",
    )
    prof = profiles.init_profiles(layers)
    if prof.empty:
        raise plotting.MissingData("layer_gradients has no step-0 rows")
    fig, axes, acts, variants, colors, _ = plotting.depth_lines(
        prof, "layer", "log10_grad_preact_rms"
    )
    for ax in axes.flat:
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    cols = [plotting.variant_label(*v) for v in variants]
    plotting.label_facets(axes, acts, cols, "layer (1 = input side)", "log10 grad_preact_rms")
    plotting.add_legend(
        fig, {str(d): dict(color=c, marker=".") for d, c in colors.items()}, "depth"
    )
    fig.suptitle("Gradient per layer at initialisation (step 0, mean over seeds of log10)")
    return fig


def _contrast_cells(df: pd.DataFrame) -> list[tuple[str, str, bool]]:
    """Up to four (activation, norm, residual) cells that contrast: a saturating activation plain,
    with a norm, with a skip, and a rectifying one plain; whichever the grid has."""
    acts = plotting.levels_of(df["activation"], plotting.ACTIVATIONS)
    sat = next((a for a in activations.SATURATING if a in acts), acts[0])
    rect = next((a for a in activations.RECTIFYING if a in acts and a != sat), None)
    norm = next((n for n in ("batch", "layer") if n in set(df["norm"])), "none")
    wanted = [(sat, "none", False), (sat, norm, False), (sat, "none", True), (rect, "none", False)]
    present = set(zip(df["activation"], df["norm"], profiles.as_bool(df["residual"]), strict=True))
    cells = list(dict.fromkeys(c for c in wanted if c in present))
    return cells or sorted(present)[:4]


@plotting.styled
def plot_gradient_flow_heatmap(layers: pd.DataFrame, selected: pd.DataFrame) -> Figure:
    """Layer x step heatmaps of log10 grad_preact_rms (mean over seeds at the selected lr;
    ``profiles.gradient_flow``) for contrasting cells at the deepest depth, one colour scale."""
    plotting.need_columns(
        layers,
        [*plotting.AXES, "cell", "lr", "step", "layer", "grad_preact_rms"],
        "layer_gradients",
    )
    plotting.need_columns(selected, ["cell", "lr"], "selected")
    flow = profiles.gradient_flow(layers, selected)
    if flow.empty:
        raise plotting.MissingData("layer_gradients has no runs at the selected lrs")
    deep = flow[flow["depth"] == flow["depth"].max()]
    cells = _contrast_cells(deep)
    shown = pd.concat(
        [plotting.select_rows(deep, activation=a, norm=n, residual=r) for a, n, r in cells]
    )
    values = shown["log10_grad_preact_rms"].to_numpy(dtype=float)
    if not np.isfinite(values).any():
        raise plotting.MissingData("no positive grad_preact_rms at the deepest depth")
    vmin, vmax = np.nanmin(values), np.nanmax(values)
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    fig, axes = plotting.facet_grid(1, len(cells), w=3.0, h=2.9, sharey=True)
    for j, (a, n, r) in enumerate(cells):
        ax = axes[0, j]
        s = plotting.select_rows(deep, activation=a, norm=n, residual=r)
        z = s.pivot_table(
            index="layer", columns="step", values="log10_grad_preact_rms", dropna=False
        )
        x, y = plotting.bin_edges(z.columns.to_numpy()), plotting.bin_edges(z.index.to_numpy())
        mesh = ax.pcolormesh(x, y, z.to_numpy(), vmin=vmin, vmax=vmax, cmap="magma")
        mesh.set_gid(f"{a}|{plotting.variant_label(n, r)}")
        ax.set_title(f"{a}, {plotting.variant_label(n, r)}\n(lr {s['lr'].iloc[0]:g})")
        ax.grid(False)
    axes[0, 0].set_ylabel(f"layer (1 = input side, {int(deep['depth'].iloc[0])} = top)")
    axes[0, 0].yaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    fig.supxlabel("training step", fontsize="medium")
    fig.colorbar(mesh, ax=list(axes.ravel()), label="log10 grad_preact_rms\n(mean over seeds)")
    fig.suptitle(f"Gradient flow during training, depth {int(deep['depth'].iloc[0])}")
    return fig


@plotting.styled
def plot_saturation(layers: pd.DataFrame, selected: pd.DataFrame) -> Figure:
    """Saturated (sigmoid, tanh) or dead (relu, gelu) fraction per layer at step 0 and at the end
    of training (selected lr, mean over seeds) at the deepest depth; a line per variant."""
    plotting.need_columns(
        layers, [*plotting.AXES, "cell", "lr", "step", "layer", "saturation"], "layer_gradients"
    )
    plotting.need_columns(selected, ["cell", "lr"], "selected")
    sat = profiles.saturation_profiles(layers, selected)
    if sat.empty:
        raise plotting.MissingData("layer_gradients has no runs at the selected lrs")
    sat = sat[sat["depth"] == sat["depth"].max()]
    acts, variants = (
        plotting.levels_of(sat["activation"], plotting.ACTIVATIONS),
        plotting.variants_of(sat),
    )
    fig, axes = plotting.facet_grid(2, len(acts), sharex=True, sharey=True)
    for (i, stage), (j, a) in product(enumerate(("init", "final")), enumerate(acts)):
        ax = axes[i, j]
        ax.set_gid(f"{stage}|{a}")
        for n, r in variants:
            s = plotting.select_rows(
                sat, activation=a, norm=n, residual=r, stage=stage
            ).sort_values("layer")
            style = plotting.variant_style(n, r)
            ax.plot(
                s["layer"],
                s["saturation"],
                marker=".",
                ms=4,
                **style,
                gid=plotting.variant_label(n, r),
            )
        ax.xaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    axes[0, 0].set_ylim(-0.02, 1.02)
    cols = [f"{a}\n({activations.get(a).unit_state} units)" for a in acts]
    plotting.label_facets(
        axes, ["step 0", "end of training"], cols, "layer (1 = input side)", "fraction"
    )
    plotting.add_legend(
        fig, {plotting.variant_label(*v): plotting.variant_style(*v) for v in variants}, "variant"
    )
    depth = int(sat["depth"].iloc[0])
    fig.suptitle(
        f"Saturated or dead units per layer, depth {depth}\n(selected lr, mean over seeds)"
    )
    return fig


@plotting.styled
def plot_theory_overlay(theory: pd.DataFrame) -> Figure:
    """Mean-field prediction (dashed) against the measured step-0 profile (solid) of log10
    grad_preact_rms relative to the top layer, plain nets; rows activation, columns depth."""
    cols = [*plotting.AXES, "layer", "predicted_log10_rms", "measured_log10_rms"]
    plotting.need_columns(theory, cols, "theory_profiles")
    plain = plotting.select_rows(theory, norm="none", residual=False)
    if plain.empty:
        raise plotting.MissingData("theory_profiles has no plain nets (norm none, no residual)")
    acts, depths = (
        plotting.levels_of(plain["activation"], plotting.ACTIVATIONS),
        plotting.levels_of(plain["depth"]),
    )
    fig, axes = plotting.facet_grid(len(acts), len(depths), w=2.4, sharex="col", sharey="row")
    for (i, a), (j, d) in product(enumerate(acts), enumerate(depths)):
        ax = axes[i, j]
        ax.set_gid(f"{a}|depth={d}")
        s = plotting.select_rows(plain, activation=a, depth=d).sort_values("layer")
        ax.plot(
            s["layer"],
            s["measured_log10_rms"],
            marker=".",
            ms=4,
            color=plotting.ACT_COLOR.get(a),
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
    plotting.label_facets(
        axes, acts, [f"depth {d}" for d in depths], "layer (1 = input side)", ylabel
    )
    entries = {f"measured, {a}": dict(color=plotting.ACT_COLOR.get(a), marker=".") for a in acts}
    entries["mean-field prediction"] = dict(color="k", ls="--")
    plotting.add_legend(fig, entries, "plain nets, step 0")
    fig.suptitle(
        "Mean-field theory vs measurement at initialisation\n"
        "(y scale shared within a row, at least one decade tall)"
    )
    return fig
