"""The figures of criticality (issue 16): the step-0 sweep of sigma_w2 from the ordered phase
through the critical point to the chaotic one, and the trainability phase diagram against
Schoenholz et al.'s trainable depth 6 xi_c.

The data come from the tables (``run_metrics``, ``selected``, ``theory``: means over seeds are
``vanishing.analysis.stats``'s, predictions ``vanishing.analysis.theory``'s); chi and xi_c
come from ``vanishing.meanfield``, computed from the settings alone (sigma_w2, sigma_b2, the
init's scheme), never from the data. sigma_w2 is Var(W) * fan_in of the hidden layers as drawn
(a named point such as ``critical`` solved for the activation, ``inits.hidden_scales``).
Each ``plot_*`` returns a ``matplotlib.figure.Figure`` or raises ``MissingData``.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from vanishing import meanfield
from vanishing.analysis.theory import CRITICAL
from vanishing.inits import AUTO, hidden_scales, resolve_init
from vanishing.report import plotting as pl
from vanishing.report import profiles
from vanishing.settings import parse_scale, parse_sigma_w2

WEIGHTS = {"lecun": "Gaussian weights (lecun)", "orthogonal": "orthogonal weights"}
TRAINABLE = 6.0  # Schoenholz et al. (2017): a plain net trains up to about 6 xi_c layers
CHAOTIC_SHADE = dict(color=sns.color_palette("colorblind")[3], alpha=0.07, lw=0)
RUN_COLUMNS = ["activation", "init", "depth", "width", "sigma_w2", "sigma_b2", "cell",
               "norm", "residual", "log10_grad_ratio_init", "grad_ratio_init_censored"]  # fmt: skip


def sw2_key(value) -> str:
    """One spelling of a sigma_w2 setting across tables: numbers as ``%g``, names as they are."""
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return str(value)


def drawn_scales(activation: str, init: str, width: int, sw2, sb2) -> tuple[float, float, float]:
    """(sigma_w2, sigma_b2, chi*) of the hidden layers as drawn: the settings resolved
    (``critical`` solved for the activation) and mean-field chi at the fixed point."""
    w, b = hidden_scales(init, activation, int(width), parse_sigma_w2(sw2_key(sw2)),
                         parse_scale(sw2_key(sb2)))  # fmt: skip
    return float(w), float(b), float(meanfield.chi_at_fixed_point(activation, w, b))


def regime(chi: float) -> str:
    """``ordered`` (chi* < 1: the gradient shrinks toward the input), ``critical`` or
    ``chaotic`` (chi* > 1: it grows toward the input); critical within ``theory.CRITICAL``
    decades per layer, as ``theory.predicted_shape`` decides; ``unknown`` without a chi*."""
    if np.isnan(chi):
        return "unknown"
    rate = 0.5 * np.log10(chi) if chi > 0 else -np.inf
    return "critical" if abs(rate) < CRITICAL else ("ordered" if rate < 0 else "chaotic")


def _colours(chis: dict[str, float]) -> dict[str, tuple]:
    """sigma_w2 key -> colour: blues for the ordered side (darker nearer 1), black at the
    critical point, reds for the chaotic side (darker further out)."""
    out = {}
    side = {r: sorted((c, k) for k, c in chis.items() if regime(c) == r) for r in
            ("ordered", "chaotic")}  # fmt: skip
    for r, pal in (("ordered", "Blues"), ("chaotic", "Reds")):
        shades = sns.color_palette(pal, len(side[r]) + 1)[1:]
        out.update({k: c for (_, k), c in zip(side[r], shades, strict=True)})
    return {k: out.get(k, (0.0, 0.0, 0.0)) for k in chis}


def _label(key: str, w: float, chi: float) -> str:
    name = f"{key} = {w:.3g}" if not _is_number(key) else key
    return f"sigma_w2 {name} (chi {chi:.2g}, {regime(chi)})"


def _is_number(key: str) -> bool:
    try:
        float(key)
    except ValueError:
        return False
    return True


def _sweep_rows(run_metrics: pd.DataFrame) -> pd.DataFrame:
    pl.need_columns(run_metrics, RUN_COLUMNS, "run_metrics")
    runs = pl.select_rows(run_metrics, norm="none", residual=False)
    runs = runs[runs["sigma_w2"].astype(str) != AUTO]
    if runs.empty:
        raise pl.MissingData("run_metrics has no plain nets with a sigma_w2 setting")
    return runs.assign(key=runs["sigma_w2"].map(sw2_key))


def _draw_panel(ax, runs, selected, theory, a, init) -> dict[str, str]:
    """One panel: seeds, the mean over seeds and theory's line per sigma_w2; returns the
    legend's labels by key."""
    scheme = resolve_init(init, a)
    first = runs.iloc[0]
    scales = {k: drawn_scales(a, init, first["width"], k, first["sigma_b2"])
              for k in runs["key"].unique()}  # fmt: skip
    keys = sorted(scales, key=lambda k: scales[k][0])
    colours = _colours({k: scales[k][2] for k in keys})
    labels, not_finite = {}, 0
    for k in keys:
        w, _, chi = scales[k]
        colour, rows = colours[k], runs[runs["key"] == k]
        cens = profiles.as_bool(rows["grad_ratio_init_censored"]).to_numpy()
        value = rows["log10_grad_ratio_init"].astype(float)
        not_finite += int((~np.isfinite(value)).sum())
        ax.plot(rows["depth"][~cens], value[~cens], "o", ms=2.5, alpha=0.3, color=colour,
                gid=f"seeds sigma_w2={k}")  # fmt: skip
        ax.plot(rows["depth"][cens], value[cens], "v", ms=4, mfc="none", color=colour,
                gid=f"censored sigma_w2={k}")  # fmt: skip
        mean = selected[selected["cell"].isin(set(rows["cell"]))].drop_duplicates("cell")
        mean = mean.sort_values("depth")
        labels[k] = _label(k, w, chi)
        ax.plot(mean["depth"], mean["log10_grad_ratio_init_mean"], "o-", ms=4, color=colour,
                label=labels[k], gid=f"sigma_w2={k}")  # fmt: skip
        bound = mean["cell"].isin(set(rows.loc[cens, "cell"])).to_numpy()
        ax.plot(mean["depth"][bound], mean["log10_grad_ratio_init_mean"][bound], "v", ms=8,
                mfc="white", color=colour, gid=f"bound sigma_w2={k}")  # fmt: skip
        pred = theory[(theory["activation"] == a) & (theory["init_scheme"] == scheme)]
        pred = pred[pred["sigma_w2"].map(sw2_key) == k].drop_duplicates("depth")
        pred = pred.sort_values("depth")
        ax.plot(pred["depth"], pred["predicted_log10_ratio"], "--", lw=1.2, color=colour,
                gid=f"theory sigma_w2={k}")  # fmt: skip
    ax.axhline(0.0, ls=":", lw=1, color="0.4", zorder=0)
    if not_finite:
        ax.text(0.02, 0.03, f"{not_finite} runs not finite (overflow): not drawn",
                transform=ax.transAxes, fontsize="x-small", gid="not finite")  # fmt: skip
    ax.legend(fontsize="xx-small", loc="lower left" if not not_finite else "center left")
    return labels


@pl.styled
def plot_criticality_sweep(
    run_metrics: pd.DataFrame, selected: pd.DataFrame, theory: pd.DataFrame
) -> Figure:
    """log10 grad_ratio_init (layer 1 / top layer, step 0) of plain nets against depth, one line
    per sigma_w2 (the mean over seeds, ``selected``; seeds as faint points; censored seeds,
    below float32, as open triangles at their bound, and a mean that holds one as a large open
    triangle: a bound, the true value lower), theory's ``predicted_log10_ratio`` dashed beside
    it; rows activation, columns Gaussian / orthogonal weights. Above 0 (shaded) the gradient
    grows toward the input: the chaotic side, chi* > 1."""
    runs = _sweep_rows(run_metrics)
    pl.need_columns(selected, ["cell", "depth", "log10_grad_ratio_init_mean"], "selected")
    pl.need_columns(theory, ["activation", "init_scheme", "depth", "sigma_w2",
                             "predicted_log10_ratio"], "theory")  # fmt: skip
    acts = pl.levels_of(runs["activation"], pl.ACTIVATIONS)
    weights = pl.levels_of(runs["init"], tuple(WEIGHTS))
    fig, axes = pl.facet_grid(len(acts), len(weights), w=3.4, h=2.6, sharex=True, sharey=True)
    for (i, a), (j, init) in product(enumerate(acts), enumerate(weights)):
        ax = axes[i, j]
        ax.set_gid(f"{a}|{init}")
        panel = runs[(runs["activation"] == a) & (runs["init"] == init)]
        if panel.empty:
            ax.set_visible(False)
            continue
        _draw_panel(ax, panel, selected, theory, a, init)
        pl.depth_axis(ax, pl.levels_of(runs["depth"]))
    low, high = axes[0, 0].get_ylim()
    high = max(high, 1.0)
    for ax in axes.flat:
        ax.axhspan(0.0, high, **CHAOTIC_SHADE, gid="chaotic side")
        ax.set_ylim(low, high)
    pl.label_facets(axes, acts, [WEIGHTS.get(w, w) for w in weights], "depth (hidden layers)",
                    "log10 grad_ratio_init")  # fmt: skip
    entries = {
        "mean over seeds": dict(color="0.3", marker="o", ls="-"),
        "mean-field theory": dict(color="0.3", ls="--"),
        "one seed": dict(color="0.3", marker="o", ms=2.5, alpha=0.4, ls="none"),
        "censored: a bound\n(true value lower)": dict(color="0.3", marker="v", mfc="none",
                                                      ls="none"),
        "grows toward the input\n(chaotic, chi > 1)": dict(color=CHAOTIC_SHADE["color"],
                                                           alpha=0.3, lw=8),
    }  # fmt: skip
    pl.add_legend(fig, entries, "plain nets, step 0")
    fig.suptitle("Criticality: layer-1 / top gradient at step 0 against depth, per sigma_w2\n"
                 "(blue: ordered, chi < 1; black: critical; red: chaotic)")  # fmt: skip
    return fig


def trainable_depth(activation: str, sw2: np.ndarray, sb2: float) -> np.ndarray:
    """6 xi_c (``meanfield.xi_c``) at each sigma_w2, NaN where it is infinite (the critical
    point) or undefined."""
    y = np.array([TRAINABLE * meanfield.xi_c(activation, float(s), sb2) for s in sw2])
    return np.where(np.isfinite(y), y, np.nan)


@pl.styled
def plot_phase_diagram(selected: pd.DataFrame) -> Figure:
    """Final test accuracy (mean over seeds at each cell's selected lr) of plain nets over
    (sigma_w2, depth), one panel per activation, with Schoenholz et al.'s trainable depth
    6 xi_c (``meanfield.xi_c`` from sigma_w2 and sigma_b2 alone) as a white curve; the dotted
    line is the critical sigma_w2, where xi_c is infinite."""
    cols = ["activation", "init", "depth", "width", "sigma_w2", "sigma_b2", "norm", "residual",
            "final_test_accuracy_mean"]  # fmt: skip
    pl.need_columns(selected, cols, "selected")
    sel = pl.select_rows(selected, norm="none", residual=False)
    sel = sel[sel["sigma_w2"].astype(str) != AUTO]
    if sel.empty:
        raise pl.MissingData("selected has no plain nets with a sigma_w2 setting")
    acts = pl.levels_of(sel["activation"], pl.ACTIVATIONS)
    fig, axes = pl.facet_grid(1, len(acts), w=4.2, h=3.4, sharey=True)
    chance = 1.0 / sel["n_classes"].max() if "n_classes" in sel.columns else 0.0
    mesh = None
    for ax, a in zip(axes[0], acts, strict=True):
        rows = sel[sel["activation"] == a].drop_duplicates("cell")
        scale = [drawn_scales(a, r["init"], r["width"], r["sigma_w2"], r["sigma_b2"])
                 for _, r in rows.iterrows()]  # fmt: skip
        rows = rows.assign(w=[s[0] for s in scale])
        sb2 = scale[0][1]
        z = rows.pivot(index="depth", columns="w", values="final_test_accuracy_mean")
        w, d = z.columns.to_numpy(dtype=float), z.index.to_numpy(dtype=float)
        x_edges, y_edges = 10 ** pl.bin_edges(np.log10(w)), 2 ** pl.bin_edges(np.log2(d))
        mesh = ax.pcolormesh(x_edges, y_edges, z.to_numpy(), vmin=chance, vmax=1.0,
                             cmap="viridis", gid=a)  # fmt: skip
        for (yi, dv), (xi, wv) in product(enumerate(d), enumerate(w)):
            if np.isfinite(z.iloc[yi, xi]):
                ax.text(wv, dv, f"{z.iloc[yi, xi]:.2f}", ha="center", va="center",
                        fontsize="x-small", color="w" if z.iloc[yi, xi] < 0.6 else "k")  # fmt: skip
        grid = np.geomspace(x_edges[0], x_edges[-1], 81)
        ax.plot(grid, trainable_depth(a, grid, sb2), color="w", lw=2.2, gid="6 xi_c")
        try:
            ax.axvline(meanfield.solve_sigma_w2(a, sb2, 1.0), color="w", ls=":", gid="critical")
        except ValueError:
            pass  # no chi = 1 point at this sigma_b2
        ax.set_xscale("log")
        ax.set_yscale("log", base=2)
        ax.set_yticks(list(d), [str(int(v)) for v in d])
        ax.set_xticks(list(w), [f"{v:.3g}" for v in w])
        ax.minorticks_off()
        ax.set_xlim(x_edges[0], x_edges[-1])
        ax.set_ylim(y_edges[0], y_edges[-1])
        ax.grid(False)
        ax.set_title(f"{a}, sigma_b2 = {sb2:g}")
    axes[0, 0].set_ylabel("depth (hidden layers)")
    fig.supxlabel("sigma_w2 (Var(W) x fan_in)", fontsize="medium")
    fig.colorbar(mesh, ax=list(axes.ravel()), label="final test accuracy\n(mean over seeds)")
    pl.add_legend(fig, {"6 xi_c (trainable depth)": dict(color="0.2", lw=2.2),
                        "critical sigma_w2 (chi = 1)": dict(color="0.2", ls=":")},
                  "mean-field theory")  # fmt: skip
    fig.suptitle("Trainability phase diagram: test accuracy at the selected lr\n"
                 "against Schoenholz et al.'s trainable depth 6 xi_c")  # fmt: skip
    return fig
