"""The criticality figures draw the tables' values and theory's predictions where meanfield puts
them; a study without the criticality sub-grids skips them."""

from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd
import pytest
from synthetic import axis, line

from vanishing import meanfield
from vanishing.report import catalog, figures, figures_criticality
from vanishing.report.plotting import MissingData

SWEEP = {"tanh": ("0.5", "1.0", "4.0"), "sigmoid": ("1.0", "critical")}
DEPTHS = (4, 32)
SEEDS = (0, 1)


def cell(a, init, sw2, d) -> str:
    return f"activation~{a}_init~{init}_sigma_w2~{sw2}_depth~{d}"


def slope(a, sw2) -> float:
    """Decades per layer of the synthetic ratio: a made-up value, not theory's."""
    return {"0.5": -0.2, "1.0": -0.01, "4.0": 0.05, "critical": 0.0}[sw2] - 0.1 * (a == "sigmoid")


def sweep_tables(grids=("criticality", "criticality_sigmoid")) -> dict[str, pd.DataFrame]:
    """run_metrics, selected and theory of a step-0 sweep: seed s has ratio slope * depth + 0.1 s;
    theory predicts 2 * slope * depth; sigmoid's deepest Gaussian seed 1 is censored."""
    runs, sel, th = [], [], []
    for a, init, d in product(SWEEP, ("lecun", "orthogonal"), DEPTHS):
        grid = grids[0] if a == "tanh" else grids[-1]
        for sw2 in SWEEP[a]:
            key = dict(activation=a, init=init, depth=d, width=16, sigma_w2=sw2, sigma_b2="auto",
                       norm="none", residual=False, cell=cell(a, init, sw2, d))  # fmt: skip
            for s in SEEDS:
                cens = a == "sigmoid" and init == "lecun" and d == 32 and s == 1
                runs.append(dict(key, seed=s, lr=0.1, grids=grid, grad_ratio_init_censored=cens,
                                 log10_grad_ratio_init=slope(a, sw2) * d + 0.1 * s))  # fmt: skip
            sel.append(dict(key, grid=grid, log10_grad_ratio_init_mean=slope(a, sw2) * d + 0.05))
            th.append(dict(key, grid=grid, init_scheme=init,
                           predicted_log10_ratio=2 * slope(a, sw2) * d))  # fmt: skip
    frames = (pd.DataFrame(runs), pd.DataFrame(sel), pd.DataFrame(th))
    return dict(zip(("run_metrics", "selected", "theory"), frames, strict=True))


def test_the_sweep_has_a_panel_per_activation_and_weights_and_a_line_per_sigma_w2():
    t = sweep_tables()
    fig = figures_criticality.plot_criticality_sweep(t["run_metrics"], t["selected"], t["theory"])
    panels = {ax.get_gid() for ax in fig.axes if ax.get_gid()}
    assert panels == {f"{a}|{w}" for a in ("sigmoid", "tanh") for w in ("lecun", "orthogonal")}
    ax = axis(fig, "tanh|orthogonal")
    for sw2 in SWEEP["tanh"]:
        mean = line(ax, f"sigma_w2={float(sw2):g}")
        assert list(mean.get_xdata()) == list(DEPTHS)
        assert mean.get_ydata() == pytest.approx([slope("tanh", sw2) * d + 0.05 for d in DEPTHS])
        pred = line(ax, f"theory sigma_w2={float(sw2):g}")
        assert pred.get_ydata() == pytest.approx([2 * slope("tanh", sw2) * d for d in DEPTHS])
        seeds = line(ax, f"seeds sigma_w2={float(sw2):g}")
        assert len(seeds.get_xdata()) == len(DEPTHS) * len(SEEDS)
    assert ax.get_xscale() == "log"


def test_the_chaotic_side_is_shaded_and_its_lines_are_red_and_named():
    t = sweep_tables()
    fig = figures_criticality.plot_criticality_sweep(t["run_metrics"], t["selected"], t["theory"])
    ax = axis(fig, "tanh|lecun")
    (shade,) = [p for p in ax.patches if p.get_gid() == "chaotic side"]
    assert shade.get_y() == pytest.approx(0.0)  # from ratio 1 upward: grows toward the input
    labels = {ln.get_gid(): ln.get_label() for ln in ax.get_lines()}
    # tanh's chi* = sigma_w2 at sigma_b2 = 0: 0.5 ordered, 1 critical, 4 chaotic
    assert "ordered" in labels["sigma_w2=0.5"] and "chaotic" in labels["sigma_w2=4"]
    assert "critical" in labels["sigma_w2=1"]
    red, blue = line(ax, "sigma_w2=4").get_color(), line(ax, "sigma_w2=0.5").get_color()
    assert red[0] > red[2] and blue[2] > blue[0]


def test_a_censored_seed_is_drawn_as_a_bound_and_its_mean_too():
    t = sweep_tables()
    fig = figures_criticality.plot_criticality_sweep(t["run_metrics"], t["selected"], t["theory"])
    ax = axis(fig, "sigmoid|lecun")
    cens = line(ax, "censored sigma_w2=1")
    assert list(cens.get_xdata()) == [32]
    assert cens.get_ydata() == pytest.approx([slope("sigmoid", "1.0") * 32 + 0.1])
    assert list(line(ax, "bound sigma_w2=1").get_xdata()) == [32]
    assert len(line(ax, "bound sigma_w2=1").get_xdata()) == 1
    assert len(line(axis(fig, "sigmoid|orthogonal"), "bound sigma_w2=1").get_xdata()) == 0
    # the named point is labelled with its solved value: sigmoid's chi = 1 at sigma_w2 ~ 117
    label = line(ax, "sigma_w2=critical").get_label()
    w = meanfield.solve_sigma_w2("sigmoid", 0.0, 1.0)
    assert f"{w:.3g}" in label and "critical" in label


def phase_table(depths=(8, 32, 64), sw2s=("0.5", "1.0", "critical", "4.0")) -> pd.DataFrame:
    rows = []
    for d, s in product(depths, sw2s):
        acc = 0.9 if d <= 8 or s == "critical" else 0.1 + 0.001 * d
        rows.append(dict(grid="phase", activation="tanh", init="lecun", depth=d, width=16,
                         sigma_w2=s, sigma_b2=0.05, norm="none", residual=False, n_classes=10,
                         cell=f"depth~{d}_sigma_w2~{s}", final_test_accuracy_mean=acc))  # fmt: skip
    return pd.DataFrame(rows)


def test_the_trainable_depth_curve_sits_where_meanfield_puts_it():
    fig = figures_criticality.plot_phase_diagram(phase_table())
    (ax,) = [ax for ax in fig.axes if ax.get_title().startswith("tanh")]
    curve = line(ax, "6 xi_c")
    x, y = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata())
    ok = np.isfinite(y)
    assert ok.sum() > 60
    assert y[ok] == pytest.approx([6 * meanfield.xi_c("tanh", s, 0.05) for s in x[ok]], rel=1e-9)
    # known values (Schoenholz et al.'s tanh at sigma_b2 = 0.05): about 7 at 0.5, 42 at 4
    assert 6 * meanfield.xi_c("tanh", 0.5, 0.05) == pytest.approx(7.15, abs=0.01)
    crit = line(ax, "critical")
    assert crit.get_xdata()[0] == pytest.approx(1.761, abs=1e-3)
    assert x.min() < 0.5 and x.max() > 4.0  # the curve spans every column


def test_the_phase_diagram_colours_each_cell_with_its_accuracy():
    fig = figures_criticality.plot_phase_diagram(phase_table())
    (mesh,) = [m for ax in fig.axes for m in ax.collections if m.get_gid() == "tanh"]
    z = np.asarray(mesh.get_array()).reshape(3, 4)  # depths x sigma_w2 (0.5, 1, 1.76, 4)
    assert z[0] == pytest.approx([0.9] * 4)
    assert z[2] == pytest.approx([0.164, 0.164, 0.9, 0.164])
    assert mesh.get_clim() == pytest.approx((0.1, 1.0))  # chance to 1


def test_tables_without_a_sigma_w2_setting_raise_missing_data():
    t = sweep_tables()
    auto = t["run_metrics"].assign(sigma_w2="auto")
    with pytest.raises(MissingData, match="sigma_w2"):
        figures_criticality.plot_criticality_sweep(auto, t["selected"], t["theory"])
    with pytest.raises(MissingData, match="sigma_w2"):
        figures_criticality.plot_phase_diagram(phase_table().assign(sigma_w2="auto"))
    with pytest.raises(MissingData, match="predicted_log10_ratio"):
        th = t["theory"].drop(columns="predicted_log10_ratio")
        figures_criticality.plot_criticality_sweep(t["run_metrics"], t["selected"], th)


def test_build_figures_draws_both_criticality_grids_together_and_skips_without_them():
    t = sweep_tables()
    phase = phase_table()
    runs = t["run_metrics"]
    phase_runs = phase.drop(columns="grid").assign(grids="phase", seed=0, lr=0.1)
    runs = pd.concat([runs, phase_runs], ignore_index=True)
    tables = {**t, "run_metrics": runs, "selected": pd.concat([t["selected"], phase])}
    names = ("criticality_sweep", "phase_diagram")
    figs = figures.build_figures(tables, names)
    fig = figs["criticality_sweep"]
    assert fig.get_label() != "placeholder"
    panels = {ax.get_gid() for ax in fig.axes if ax.get_gid()}
    assert {"sigmoid|lecun", "tanh|lecun"} <= panels  # criticality_sigmoid drawn beside
    assert "criticality + criticality_sigmoid" in fig.get_suptitle()
    assert figs["phase_diagram"].get_label() != "placeholder"
    # a study with neither: both skipped with the reason, not drawn from another sub-grid
    other = {k: v.assign(**{"grids" if k == "run_metrics" else "grid": "main"})
             for k, v in tables.items()}  # fmt: skip
    figs = figures.build_figures(other, names)
    for name in ("criticality_sweep", "phase_diagram"):
        assert figs[name].get_label() == "placeholder"
        assert "no sub-grid" in figs[name].axes[0].texts[0].get_text()


def test_the_catalog_files_both_under_criticality():
    specs = [catalog.BY_NAME[n] for n in ("criticality_sweep", "phase_diagram")]
    assert {(s.category, s.subcategory) for s in specs} == {(catalog.OVERVIEW, "Criticality")}
    assert catalog.BY_NAME["criticality_sweep"].grids == ("criticality", "criticality_sigmoid")
    assert figures.plot_function("phase_diagram") is figures_criticality.plot_phase_diagram
