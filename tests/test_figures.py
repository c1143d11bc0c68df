"""Figures draw the values of the tables they are given; profiles average seeds as documented."""

from __future__ import annotations

import io
from itertools import product

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from synthetic import SETTING_DEFAULTS, axis, line, probe_inputs

from vanishing.analysis.tables import build_tables, read_tables
from vanishing.report import catalog, figures, figures_gradients, profiles

BASE = dict(  # every registered setting at its default, then this test's values
    SETTING_DEFAULTS,
    data="digits", width=16, init="auto", residual_scale=1.0, optimizer="sgd", momentum=0.9,
    weight_decay=0.0,
    batch_size=32, epochs=3, probe_every=5,
)  # fmt: skip
SLOPE = {"sigmoid": 0.5, "relu": 0.0}  # decades of grad_preact_rms lost per layer at step 0


def cell_name(a, d, n, r) -> str:
    return f"activation~{a}_depth~{d}_norm~{n}_residual~{str(r).lower()}"


def make_tables(
    acts=("sigmoid", "relu"),
    depths=(2, 4),
    norms=("none", "batch"),
    residuals=(False, True),
    lrs=(0.01, 0.1),
    seeds=(0, 1),
    steps=(0, 5, 10),
):
    """runs, layer_gradients and curves of a tiny grid with values known in closed form.

    log10 grad_preact_rms = -SLOPE * (depth - layer) + 0.1 * seed - 0.01 * step (lr-independent);
    saturation = 0.1 * seed + 0.01 * layer + 0.001 * step; val accuracy is higher at lr 0.1.
    """
    runs, layers, curves = [], [], []
    for a, d, n, r, lr, s in product(acts, depths, norms, residuals, lrs, seeds):
        key = dict(
            BASE, activation=a, depth=d, norm=n, residual=r, lr=lr, cell=cell_name(a, d, n, r)
        )
        key["seed"] = s
        acc = 0.9 - 0.1 * d * SLOPE[a] + (0.05 if lr == 0.1 else 0.0) + 0.01 * s
        runs.append(
            dict(key, mlflow_run_id="r", init_scheme="xavier" if a == "sigmoid" else "kaiming",
                 input_dim=8, n_classes=10, input_second_moment=1.0, final_train_loss=1 - acc,
                 final_val_accuracy=acc, best_val_accuracy=acc, final_test_accuracy=acc,
                 diverged=False, diverged_step=np.nan,
                 grad_ratio_init=10 ** (-SLOPE[a] * (d - 1)), train_seconds=1.0)
        )  # fmt: skip
        for step, layer in product(steps, range(1, d + 1)):
            log_rms = -SLOPE[a] * (d - layer) + 0.1 * s - 0.01 * step
            sat = 0.1 * s + 0.01 * layer + 0.001 * step
            layers.append(dict(key, step=step, layer=layer, grad_preact_rms=10**log_rms,
                               grad_weight_norm=1.0, saturation=sat,
                               weight_update_rel=np.nan if step == 0 else 10.0 ** -layer,
                               weight_distance_rel=0.01 * step,
                               weight_unchanged=1.0 - step / 20))  # fmt: skip
        for epoch in (1, 2, 3):
            curves.append(dict(key, epoch=epoch, step=5 * epoch, train_loss=2.0 / epoch + 0.1 * s,
                               val_accuracy=acc * epoch / 3))  # fmt: skip
    return pd.DataFrame(runs), pd.DataFrame(layers), pd.DataFrame(curves)


def stats_tables(**grid) -> dict[str, pd.DataFrame]:
    """The raw tables of ``make_tables`` and every statistics table built from them."""
    runs, layers, curves = make_tables(**grid)
    built = build_tables(runs, layers, curves, probe_inputs(runs), np.random.default_rng(0))
    return {"runs": runs, "layer_gradients": layers, "curves": curves, **built}


def hand_selected() -> pd.DataFrame:
    """A selected.csv-like table with chosen means and intervals, and residual read as text."""
    rows = []
    for a, d, r in product(("sigmoid", "relu"), (2, 8, 32), (False, True)):
        mean = {"sigmoid": 0.8, "relu": 0.9}[a] - 0.01 * d - (0 if r else 0.1)
        rows.append(dict(activation=a, depth=d, norm="none", residual=str(r), n_classes=4,
                         final_test_accuracy_mean=mean, final_test_accuracy_ci_low=mean - 0.05,
                         final_test_accuracy_ci_high=mean + 0.02,
                         log10_grad_ratio_init_mean=-0.5 * d if a == "sigmoid" else 0.1,
                         log10_grad_ratio_init_ci_low=np.nan, log10_grad_ratio_init_ci_high=np.nan,
                         lr_at_edge=d == 32))  # fmt: skip
    return pd.DataFrame(rows)


def test_trainability_draws_the_selected_means_on_a_log2_depth_axis():
    sel = hand_selected()
    fig = figures.plot_trainability(sel)
    ax = axis(fig, "norm=none|residual=False")
    relu = line(ax, "relu")
    assert list(relu.get_xdata()) == [2, 8, 32]
    assert relu.get_ydata() == pytest.approx([0.9 - 0.01 * d - 0.1 for d in (2, 8, 32)])
    assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
    chance = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert chance and chance[0].get_ydata()[0] == pytest.approx(0.25)  # 1 / n_classes
    assert len([a for a in fig.axes if a.get_gid()]) == 2  # one norm x two residual panels
    assert ax.get_ylim()[0] == 0


def test_grad_ratio_is_ten_to_the_mean_log_on_a_log_axis():
    fig = figures_gradients.plot_grad_ratio_init(hand_selected())
    ax = axis(fig, "norm=none|residual=True")
    assert ax.get_yscale() == "log"
    assert line(ax, "sigmoid").get_ydata() == pytest.approx([10**-1, 10**-4, 10**-16])


def test_init_profiles_average_log10_over_seeds_once_per_seed():
    _, layers, _ = make_tables(acts=("sigmoid",), depths=(4,), norms=("none",), residuals=(False,),
                               seeds=(0, 1, 3))  # fmt: skip
    prof = profiles.init_profiles(layers)
    assert len(prof) == 4 and (prof["n_seeds"] == 3).all()  # two lrs, still three seeds
    expected = [-0.5 * (4 - layer) + 0.1 * (0 + 1 + 3) / 3 for layer in (1, 2, 3, 4)]
    assert prof.sort_values("layer")["log10_grad_preact_rms"].to_numpy() == pytest.approx(expected)


def test_gradient_flow_heatmap_shows_the_mean_over_seeds_at_the_selected_lr():
    t = stats_tables()
    fig = figures_gradients.plot_gradient_flow_heatmap(t["layer_gradients"], t["selected"])
    meshes = {m.get_gid(): m for ax in fig.axes for m in ax.collections if m.get_gid()}
    assert set(meshes) == {"sigmoid|plain", "sigmoid|batch norm", "sigmoid|residual", "relu|plain"}
    z = np.asarray(meshes["sigmoid|plain"].get_array())
    steps, layer = np.array([0, 5, 10]), np.arange(1, 5)[:, None]
    expected = -0.5 * (4 - layer) + 0.1 * 0.5 - 0.01 * steps  # seeds 0 and 1
    assert z.shape == (4, 3) and z == pytest.approx(expected)
    clims = {m.get_clim() for m in meshes.values()}
    assert len(clims) == 1  # one colour scale for every panel
    assert any("log10 grad_preact_rms" in ax.get_ylabel() for ax in fig.axes)  # the colour bar


def test_lr_sweep_marks_the_selected_lr_on_a_log_axis():
    t = stats_tables()
    fig = figures.plot_lr_sweep(t["summary"])
    ax = axis(fig, "sigmoid|plain")
    assert ax.get_xscale() == "log"
    assert list(line(ax, "selected depth=4").get_xdata()) == [0.1]
    mean = 0.9 - 0.1 * 4 * 0.5 + 0.005
    assert line(ax, "depth=4").get_ydata() == pytest.approx([mean, mean + 0.05])


def test_curve_bands_are_t_intervals_over_seeds():
    t = stats_tables(acts=("relu",), depths=(2,), norms=("none",), residuals=(False,))
    bands = profiles.curve_bands(t["curves"], t["selected"])
    assert len(bands) == 3 and set(bands["lr"]) == {0.1}
    first = bands[bands["epoch"] == 1].iloc[0]
    half = sps.t.ppf(0.975, 1) * np.std([2.0, 2.1], ddof=1) / np.sqrt(2)
    assert first["train_loss_mean"] == pytest.approx(2.05)
    assert (first["train_loss_ci_low"], first["train_loss_ci_high"]) == pytest.approx(
        (2.05 - half, 2.05 + half)
    )


def test_training_curves_show_plain_and_the_best_remedy_by_validation():
    t = stats_tables(depths=(2, 4, 8))
    sel = t["selected"].copy()
    best = (sel["norm"] == "batch") & ~sel["residual"] & (sel["activation"] == "sigmoid")
    sel.loc[best, "final_val_accuracy_mean"] = 0.99  # batch norm wins for sigmoid
    fig = figures.plot_training_curves(t["curves"], sel)
    ax = axis(fig, "sigmoid|val_accuracy|depth=8")
    assert {ln.get_gid() for ln in ax.get_lines()} - {None} == {"plain", "batch norm"}
    assert {ax.get_gid().split("|")[-1] for ax in fig.axes if ax.get_gid()} == {
        "depth=2", "depth=4", "depth=8"
    }  # fmt: skip
    loss = line(axis(fig, "sigmoid|train_loss|depth=2"), "plain")
    assert loss.get_ydata() == pytest.approx([2.05, 1.05, 2 / 3 + 0.05])


def test_saturation_at_init_and_end_for_the_deepest_depth():
    t = stats_tables()
    fig = figures_gradients.plot_saturation(t["layer_gradients"], t["selected"])
    init, end = axis(fig, "init|relu"), axis(fig, "final|relu")
    assert line(init, "plain").get_ydata() == pytest.approx(0.05 + 0.01 * np.arange(1, 5))
    assert line(end, "plain").get_ydata() == pytest.approx(0.05 + 0.01 * np.arange(1, 5) + 0.01)


def test_theory_overlay_draws_both_profiles_for_plain_nets():
    t = stats_tables()
    fig = figures_gradients.plot_theory_overlay(t["theory_profiles"])
    ax = axis(fig, "sigmoid|depth=4")
    assert line(ax, "measured").get_ydata() == pytest.approx([-1.5, -1.0, -0.5, 0.0])
    assert line(ax, "predicted").get_linestyle() == "--"
    assert len([a for a in fig.axes if a.get_gid()]) == 4  # 2 activations x 2 depths, plain only


def _write(tmp_path, tables: dict[str, pd.DataFrame], skip=()) -> None:
    for name, df in tables.items():
        if name not in skip:
            df.to_csv(tmp_path / f"{name}.csv", index=False)


def test_write_all_writes_every_figure_as_png_and_pdf(tmp_path):
    _write(tmp_path, stats_tables())
    paths = figures.write_all(tmp_path, tmp_path / "fig")
    assert [p.name for p in paths[::2]] == [f"{n}.png" for n in catalog.NAMES]
    for p in paths:
        head = p.read_bytes()[:8]
        assert head.startswith(b"\x89PNG" if p.suffix == ".png" else b"%PDF")
    figs = figures.build_figures(read_tables(tmp_path, catalog.TABLES))
    # only the theory scatter needs depth >= 8, which this grid (depths 2, 4) lacks, the
    # criticality figures their own sub-grids and the figures through time recurrent nets
    placeholders = [n for n, f in figs.items() if f.get_label() == "placeholder"]
    assert placeholders == ["criticality_sweep", "phase_diagram", "theory_slopes",
                            "time_profiles", "time_training"]  # fmt: skip
    assert "depth >= 8" in figs["theory_slopes"].axes[0].texts[0].get_text()


def test_missing_tables_give_placeholders_not_errors(tmp_path):
    _write(tmp_path, stats_tables(), skip=("summary", "selected", "theory_profiles"))
    paths = figures.write_all(tmp_path, tmp_path / "fig")
    assert len(paths) == 2 * len(catalog.FIGURES) and all(p.exists() for p in paths)
    figs = figures.build_figures(read_tables(tmp_path, catalog.TABLES))
    skipped = {n for n, f in figs.items() if f.get_label() == "placeholder"}
    drawn = {"gradient_profile_init", "deep_profiles", "decay_shapes", "steps_to_target"}
    assert skipped == set(catalog.NAMES) - drawn  # these read none of the missing tables
    assert "selected.csv" in figs["trainability"].axes[0].texts[0].get_text()
    # each column of the decay shapes names its activation and the fitted shape
    titles = [ax.get_title() for ax in figs["decay_shapes"].axes if ax.get_title()]
    acts = sorted({a for a in stats_tables()["decay_fits"]["activation"]})
    assert sorted(t.split(":")[0] for t in titles) == acts, titles


def test_a_one_cell_grid_draws_every_figure():
    t = stats_tables(acts=("relu",), depths=(3,), norms=("layer",), residuals=(True,), lrs=(0.1,),
                     seeds=(0,), steps=(0,))  # fmt: skip
    figs = figures.build_figures(t)
    skipped = {n for n, f in figs.items() if f.get_label() == "placeholder"}
    overview = {f.name for f in catalog.FIGURES if f.category == catalog.OVERVIEW}
    # no plain net in this grid, and no criticality sub-grid
    assert skipped & overview == {"theory_overlay", "criticality_sweep", "phase_diagram"}
    # the claims' figures need plain nets, or nets without skips: each says so
    assert skipped == set(catalog.NAMES) - (overview - skipped) - {
        "deep_profiles",
        "residual_deep",
    }
    for n in skipped:
        assert "skipped" in figs[n].axes[0].texts[0].get_text()
    for f in figs.values():
        f.savefig(io.BytesIO(), format="png", dpi=30)


def test_an_extra_varying_setting_is_restricted_to_one_value():
    t = stats_tables(acts=("relu",), norms=("none",), residuals=(False,))
    wide = {k: v.assign(width=32, cell=v["cell"] + "_width~32") for k, v in t.items()
            if "cell" in v.columns}  # fmt: skip
    both = {k: pd.concat([t[k], wide[k]], ignore_index=True) if k in wide else t[k] for k in t}
    kept, note = figures.restrict(both)
    assert figures.restrict(both, varies=("width",)) == (both, "")
    assert note.startswith("shown: width=")
    assert kept["selected"]["width"].nunique() == 1 and len(kept["selected"]) == len(t["selected"])
