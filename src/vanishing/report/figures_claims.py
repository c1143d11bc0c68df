"""The figures of the claims about the problem (claims 1-6): the evidence each rule reads, drawn.

Each ``plot_*`` takes the tables the catalog names (already restricted to the claim's sub-grid),
returns a ``matplotlib.figure.Figure`` and raises ``MissingData`` when the tables cannot support
it. Layer 1 is nearest the input; depth is the number of hidden layers.
"""

from __future__ import annotations

from itertools import product

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vanishing import activations
from vanishing.analysis.metrics import FLOAT32_TINY
from vanishing.report import plotting, profiles

FIT_STYLE = {"exponential": dict(color="k", ls="--"), "power law": dict(color="0.45", ls=":")}


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    return plotting.select_rows(df, norm="none", residual=False)


@plotting.styled
def plot_decay_shapes(run_metrics: pd.DataFrame, decay_fits: pd.DataFrame) -> Figure:
    """Seed-level log10 grad_ratio_init of plain nets against depth, on a linear depth axis (top:
    exponential decay is straight) and a log one (bottom: a power law is straight), with both
    fits of ``decay_fits``; censored ratios (below float32) drawn at their bound as triangles."""
    plotting.need_columns(
        run_metrics,
        [*plotting.AXES, "log10_grad_ratio_init", "grad_ratio_init_censored"],
        "run_metrics",
    )
    plotting.need_columns(
        decay_fits, [*plotting.AXES[:1], "norm", "residual", "exp_slope", "shape"], "decay_fits"
    )
    runs, fits = _plain(run_metrics), _plain(decay_fits)
    acts = plotting.levels_of(fits["activation"], plotting.ACTIVATIONS)
    if not acts:
        raise plotting.MissingData("decay_fits has no plain networks")
    fig, axes = plotting.facet_grid(2, len(acts), w=2.6, h=2.3, sharey="col")
    titles = []
    for (i, scale), (j, a) in product(enumerate(("linear", "log")), enumerate(acts)):
        ax = axes[i, j]
        ax.set_gid(f"{a}|{scale}")
        pts = plotting.select_rows(runs, activation=a)
        cens = profiles.as_bool(pts["grad_ratio_init_censored"]).to_numpy()
        color = plotting.ACT_COLOR.get(a)
        ax.plot(pts["depth"][~cens], pts["log10_grad_ratio_init"][~cens], "o", ms=3, alpha=0.6,
                color=color, gid="measured")  # fmt: skip
        ax.plot(pts["depth"][cens], pts["log10_grad_ratio_init"][cens], "v", ms=4, mfc="none",
                color=color, gid="censored")  # fmt: skip
        fit = plotting.select_rows(fits, activation=a).iloc[0]
        d = np.geomspace(max(1, pts["depth"].min()), max(2, pts["depth"].max()), 100)
        if np.isfinite(fit["exp_slope"]):
            ax.plot(d, fit["exp_intercept"] + fit["exp_slope"] * d, **FIT_STYLE["exponential"])
            ax.plot(d, fit["pow_intercept"] + fit["pow_exponent"] * np.log10(d),
                    **FIT_STYLE["power law"])  # fmt: skip
        if scale == "log":
            ax.set_xscale("log", base=2)
        if i == 0:
            titles.append(f"{a}: {fit['shape'] or 'no fit'}")
    plotting.label_facets(axes, ["linear depth", "log depth"], titles, "depth (hidden layers)",
           "log10 grad_ratio_init")  # fmt: skip
    entries = {"exponential fit": FIT_STYLE["exponential"], "power-law fit": FIT_STYLE["power law"]}
    entries["censored (bound)"] = dict(color="0.3", marker="v", mfc="none", ls="none")
    plotting.add_legend(fig, entries, "plain nets, step 0")
    fig.suptitle("Exponential or power law? log10(layer 1 / top gradient) against depth")
    return fig


def _flow_heatmaps(flow: pd.DataFrame, value: str, label: str, title: str) -> Figure:
    """Layer x probe heatmaps of ``value`` for the deepest plain cell of each activation."""
    deep = flow[flow["depth"] == flow["depth"].max()]
    acts = plotting.levels_of(deep["activation"], plotting.ACTIVATIONS)
    shown = deep[np.isfinite(deep[value].astype(float))]
    if shown.empty:
        raise plotting.MissingData(f"no finite {value}")
    vmin, vmax = np.nanmin(shown[value]), np.nanmax(shown[value])
    fig, axes = plotting.facet_grid(1, len(acts), w=3.0, h=2.9, sharey=True)
    mesh = None
    for j, a in enumerate(acts):
        s = plotting.select_rows(deep, activation=a)
        z = s.pivot_table(index="layer", columns="step", values=value, dropna=False)
        steps = z.columns.to_numpy()
        x, y = plotting.bin_edges(np.arange(len(steps))), plotting.bin_edges(z.index.to_numpy())
        mesh = axes[0, j].pcolormesh(x, y, z.to_numpy(), vmin=vmin, vmax=vmax, cmap="viridis")
        mesh.set_gid(a)
        ticks = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), 5)).round().astype(int))
        axes[0, j].set_xticks(ticks, [str(int(steps[k])) for k in ticks])
        axes[0, j].set_title(f"{a}, lr {s['lr'].iloc[0]:g}")
        axes[0, j].grid(False)
    axes[0, 0].set_ylabel(f"layer (1 = input side, {int(deep['depth'].iloc[0])} = top)")
    axes[0, 0].yaxis.set_major_locator(mpl.ticker.MaxNLocator(integer=True))
    fig.supxlabel("probe step", fontsize="medium")
    fig.colorbar(mesh, ax=list(axes.ravel()), label=label)
    fig.suptitle(title)
    return fig


@plotting.styled
def plot_update_ledger(layer_gradients: pd.DataFrame, selected: pd.DataFrame) -> Figure:
    """Layer x probe-step heatmaps of log10 weight_update_rel (the relative change of W_l over
    each probe interval; mean over seeds at the selected lr) for the deepest plain nets."""
    plotting.need_columns(
        layer_gradients,
        [*plotting.AXES, "cell", "lr", "step", "layer", "weight_update_rel"],
        "layer_gradients",
    )
    plotting.need_columns(selected, ["cell", "lr"], "selected")
    flow = _plain(profiles.flow(layer_gradients, selected, "weight_update_rel"))
    if flow.empty:
        raise plotting.MissingData("no plain nets at the selected lrs")
    label = "log10 ||dW|| / ||W|| per probe interval\n(mean over seeds)"
    title = "Update ledger: how much each layer's weights move, plain nets"
    return _flow_heatmaps(flow, "log10_weight_update_rel", label, title)


@plotting.styled
def plot_layer_reset(selected: pd.DataFrame) -> Figure:
    """Test accuracy of plain nets as trained (solid) and with layers 1..depth//2 reset to their
    initial values (dashed), against depth, at the selected lr (means over seeds)."""
    plotting.need_columns(
        selected, [*plotting.AXES, "final_test_accuracy_mean", "reset_drop_mean"], "selected"
    )
    plain = _plain(selected)
    acts = plotting.levels_of(plain["activation"], plotting.ACTIVATIONS)
    if not acts:
        raise plotting.MissingData("selected has no plain nets")
    fig, axes = plotting.facet_grid(1, len(acts), w=2.6, h=2.4, sharey=True)
    for j, a in enumerate(acts):
        ax, s = axes[0, j], plotting.select_rows(plain, activation=a).sort_values("depth")
        color = plotting.ACT_COLOR.get(a)
        trained = s["final_test_accuracy_mean"].astype(float)
        ax.plot(s["depth"], trained, "o-", color=color, gid="trained")
        ax.plot(s["depth"], trained - s["reset_drop_mean"].astype(float), "s--", color=color,
                mfc="white", gid="reset")  # fmt: skip
        plotting.chance_line(ax, selected)
        plotting.depth_axis(ax, plotting.levels_of(s["depth"]))
        ax.set_title(a)
        ax.set_ylim(0, 1.02)
    plotting.label_facets(axes, [""], ["" for _ in acts], "depth (hidden layers)", "test accuracy")
    plotting.add_legend(fig, {"as trained": dict(color="0.3", marker="o"),
                  "lower half reset to init": dict(color="0.3", marker="s", mfc="white", ls="--"),
                  "chance": dict(color="0.5", ls="--")}, "plain nets")  # fmt: skip
    fig.suptitle("Did the lower layers learn? Accuracy before and after resetting them")
    return fig


@plotting.styled
def plot_saturation_mechanism(theory: pd.DataFrame, selected: pd.DataFrame) -> Figure:
    """Top: the measured per-layer decay of plain sigmoid/tanh nets at init (decades per layer)
    against what the activation's largest slope alone gives (``ceiling_slope``), per init
    scheme. Bottom: their saturated fraction at init and after training (selected lr)."""
    plotting.need_columns(
        theory, [*plotting.AXES, "init_scheme", "measured_slope", "ceiling_slope"], "theory"
    )
    plotting.need_columns(
        selected,
        [*plotting.AXES, "init_scheme", "saturation_init_mean", "saturation_final_mean"],
        "selected",
    )
    th = _plain(theory[theory["activation"].isin(activations.SATURATING)])
    sel = _plain(selected[selected["activation"].isin(activations.SATURATING)])
    acts = plotting.levels_of(th["activation"], plotting.ACTIVATIONS)
    if not acts:
        raise plotting.MissingData("theory has no plain sigmoid or tanh nets")
    schemes = plotting.levels_of(th["init_scheme"])
    colors = dict(zip(schemes, mpl.colormaps["tab10"].colors, strict=False))
    fig, axes = plotting.facet_grid(2, len(acts), w=2.8, h=2.3, sharex=True)
    for j, a in enumerate(acts):
        for k in schemes:
            t = plotting.select_rows(th, activation=a, init_scheme=k).sort_values("depth")
            axes[0, j].plot(t["depth"], t["measured_slope"], "o-", color=colors[k], gid=f"m {k}")
            axes[0, j].plot(t["depth"], t["ceiling_slope"], ":", color=colors[k], gid=f"c {k}")
            s = plotting.select_rows(sel, activation=a, init_scheme=k).sort_values("depth")
            axes[1, j].plot(s["depth"], s["saturation_init_mean"], "o-", color=colors[k])
            axes[1, j].plot(
                s["depth"], s["saturation_final_mean"], "s--", color=colors[k], mfc="white"
            )
        axes[0, j].set_title(a)
        axes[1, j].set_ylim(-0.02, 1.02)
        for i in (0, 1):
            plotting.depth_axis(axes[i, j], plotting.levels_of(th["depth"]))
    plotting.label_facets(axes, ["decades per layer", "saturated fraction"], ["" for _ in acts],
           "depth (hidden layers)", "")  # fmt: skip
    entries = {f"{k} init": dict(color=colors[k], marker="o") for k in schemes}
    entries["largest slope alone (dotted)"] = dict(color="0.3", ls=":")
    entries["after training (dashed)"] = dict(color="0.3", ls="--", marker="s", mfc="white")
    plotting.add_legend(fig, entries, "plain nets")
    fig.suptitle("Saturation or the slope ceiling? Decay at init and saturated units")
    return fig


@plotting.styled
def plot_deep_profiles(layer_gradients: pd.DataFrame) -> Figure:
    """log10 grad_preact_rms at step 0 against layer for the deepest nets of each variant (mean
    over seeds); the grey band is below float32's smallest normal number, where a gradient
    is not measured (it underflows: censored)."""
    plotting.need_columns(
        layer_gradients,
        [*plotting.AXES, "cell", "seed", "step", "layer", "grad_preact_rms"],
        "layer_gradients",
    )
    prof = profiles.init_profiles(layer_gradients)
    deepest = sorted(prof["depth"].unique())[-3:] if len(prof) else []
    prof = prof[prof["depth"].isin(deepest)]
    if prof.empty:
        raise plotting.MissingData("layer_gradients has no step-0 rows")
    fig, axes, acts, variants, colors, _ = plotting.depth_lines(
        prof, "layer", "log10_grad_preact_rms"
    )
    floor = np.log10(FLOAT32_TINY)
    for ax in axes.flat:
        ax.axhspan(floor - 10, floor, color="0.85", zorder=0)
        ax.set_ylim(bottom=max(floor - 5, ax.get_ylim()[0]))
    cols = [plotting.variant_label(*v) for v in variants]
    plotting.label_facets(axes, acts, cols, "layer (1 = input side)", "log10 grad_preact_rms")
    entries = {str(d): dict(color=c, marker=".") for d, c in colors.items()}
    entries["below float32 (censored)"] = dict(color="0.85", lw=6)
    plotting.add_legend(fig, entries, "depth")
    fig.suptitle("Hundreds of layers: the gradient at initialisation, layer by layer")
    return fig


@plotting.styled
def plot_activations_matched(selected: pd.DataFrame) -> Figure:
    """grad_ratio_init of plain nets against depth per activation, one panel per init scheme:
    each activation's own (auto) and the schemes shared by every activation."""
    plotting.need_columns(
        selected, [*plotting.AXES, "init", "log10_grad_ratio_init_mean"], "selected"
    )
    plain = _plain(selected)
    inits = plotting.levels_of(plain["init"], ("auto",))
    if not inits:
        raise plotting.MissingData("selected has no plain nets")
    acts = plotting.levels_of(plain["activation"], plotting.ACTIVATIONS)
    fig, axes = plotting.facet_grid(1, len(inits), w=2.6, h=2.6, sharey=True)
    for j, k in enumerate(inits):
        ax = axes[0, j]
        for a in acts:
            s = plotting.select_rows(plain, activation=a, init=k).sort_values("depth")
            ax.plot(s["depth"], 10.0 ** s["log10_grad_ratio_init_mean"].astype(float), "o-",
                    color=plotting.ACT_COLOR.get(a), gid=a)  # fmt: skip
        ax.axhline(1.0, ls=":", color="0.4", lw=1)
        plotting.depth_axis(ax, plotting.levels_of(plain["depth"]))
        ax.set_title("own init (auto)" if k == "auto" else f"{k} init for all")
    axes[0, 0].set_yscale("log")
    plotting.label_facets(axes, [""], ["" for _ in inits], "depth (hidden layers)",
           "grad_ratio_init (layer 1 / top)")  # fmt: skip
    plotting.add_legend(
        fig, {a: dict(color=plotting.ACT_COLOR.get(a), marker="o") for a in acts}, "activation"
    )
    fig.suptitle("Does the activation decide it, or its init? Plain nets at step 0")
    return fig
