"""The figures of the claims through time (claims 12-14, issue 18): the recurrent nets'
gradient profile in time, log10 ||dL/dh_t|| against the step t, one line per T.

Each ``plot_*`` takes the tables the catalog names (already restricted to its sub-grid) and
returns a ``matplotlib.figure.Figure``, or raises ``MissingData``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from vanishing.analysis.time_profiles import PANEL_KEYS, time_profile_means
from vanishing.report.plotting import MissingData, add_legend, facet_grid, need_columns, styled
from vanishing.training.sequences import WINDOW

STAGE_STYLE = {"init": dict(ls="-"), "final": dict(ls="--")}


def _panel_title(key: tuple) -> str:
    arch, activation, init, sw2 = key
    net = activation if arch == "rnn" else arch
    scale = f"sigma_w2 {sw2}" if str(sw2) != "auto" else f"init {init}"
    return f"{net}, {scale}"


@styled
def plot_time_profiles(layer_gradients: pd.DataFrame, run_metrics: pd.DataFrame) -> Figure:
    """log10 grad_preact_rms (the state's gradient ||dL/dh_t||) against the time step t, one
    panel per net (arch or activation, and its recurrent init), one line per T (light to
    dark), solid at step 0 and dashed after training; mean over seeds of the log10. The
    dotted line marks step 8, where the label's information ends."""
    need_columns(layer_gradients, ["cell", "seed", "step", "layer", "grad_preact_rms"],
          "layer_gradients")  # fmt: skip
    need_columns(run_metrics, ["cell", *PANEL_KEYS, "seq_len"], "run_metrics")
    prof = time_profile_means(layer_gradients, run_metrics)
    if prof.empty:
        raise MissingData("layer_gradients has no recurrent nets")
    panels = list(prof.groupby(list(PANEL_KEYS), dropna=False).groups)
    ncols = min(3, len(panels))
    nrows = int(np.ceil(len(panels) / ncols))
    fig, axes = facet_grid(nrows, ncols, w=2.7, h=2.2, sharey=True)
    lengths = sorted(prof["seq_len"].unique())
    colors = dict(zip(lengths, sns.color_palette("crest", len(lengths)), strict=True))
    for ax, key in zip(axes.flat, panels, strict=False):
        sel = prof
        for k, v in zip(PANEL_KEYS, key, strict=True):
            sel = sel[sel[k].astype(str) == str(v)]
        for (T, stage), s in sel.groupby(["seq_len", "stage"]):
            s = s.sort_values("t")
            ax.plot(s["t"], s["log10_rms"], color=colors[T], gid=f"T{T}-{stage}",
                    **STAGE_STYLE[stage])  # fmt: skip
        ax.axvline(WINDOW, ls=":", color="0.4", lw=1)
        ax.set_title(_panel_title(key))
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("log10 ||dL/dh_t||")
    fig.supxlabel("time step t (the loss is read at t = T)", fontsize="medium")
    entries = {f"T = {T}": dict(color=c) for T, c in colors.items()}
    if (prof["stage"] == "final").any():
        entries.update({"step 0": dict(color="0.3", ls="-"), "trained": dict(color="0.3", ls="--")})
    add_legend(fig, entries, "sequence length")
    fig.suptitle("Through time: the gradient reaching each step from the loss at step T")
    return fig


plot_time_training = plot_time_profiles  # the trained sub-grid's nets, drawn the same way
