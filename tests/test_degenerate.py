"""Degenerate studies break nothing: random small studies (one seed, one depth, one activation,
no plain nets, every run of a cell diverged, gradients that underflow to 0 or overflow to inf)
go through the statistics, the theory, the figures and FINDINGS without raising, and what
cannot be computed is reported as such."""

from __future__ import annotations

import warnings
from itertools import product

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from study import TINY, snakemake, store_runs, write_config
from synthetic import CELL_SETTINGS, make_runs, probe_inputs

from vanishing.analysis.comparisons import compare_two
from vanishing.analysis.tables import build_tables
from vanishing.report.evidence import VERDICTS
from vanishing.report.figures import build_figures
from vanishing.report.findings import evaluate, render


def study(draw) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """runs, layer_gradients and curves of a random small study."""
    acts = draw(st.lists(st.sampled_from(["sigmoid", "tanh", "relu"]), min_size=1, max_size=2,
                         unique=True))  # fmt: skip
    depths = draw(st.lists(st.sampled_from([1, 2, 8, 128]), min_size=1, max_size=3, unique=True))
    norms = draw(st.lists(st.sampled_from(["none", "batch"]), min_size=1, unique=True))
    residuals = draw(st.lists(st.booleans(), min_size=1, unique=True))
    seeds = range(draw(st.integers(1, 3)))
    lrs = draw(st.lists(st.sampled_from([0.01, 0.1]), min_size=1, unique=True))
    epochs = draw(st.sampled_from([0, 2]))
    grid = draw(st.sampled_from(["main", "profile", "deep"]))
    rows, layers, curves = [], [], []
    for a, d, n, r, lr, s in product(acts, depths, norms, residuals, lrs, seeds):
        kind = draw(st.sampled_from(["normal", "diverged", "underflow", "overflow", "flat"]))
        ratio = {"normal": 10 ** (-0.3 * d), "diverged": 0.1, "underflow": 0.0,
                 "overflow": np.inf, "flat": 1.0}[kind]  # fmt: skip
        acc = draw(st.floats(0.05, 1.0))
        rows.append(dict(activation=a, depth=d, norm=n, residual=r, lr=lr, seed=s, epochs=epochs,
                         diverged=kind == "diverged", grad_ratio_init=ratio, grids=grid,
                         final_val_accuracy=acc, final_test_accuracy=acc,
                         reset_test_accuracy=acc / 2, reset_layers=d // 2))  # fmt: skip
    runs = make_runs(rows)
    for _, run in runs.iterrows():
        d = int(run["depth"])
        steps = (0,) if epochs == 0 else (0, 1, 32)
        for step, layer in product(steps, range(1, d + 1)):
            rms = run["grad_ratio_init"] ** ((d - layer) / max(d - 1, 1)) if step == 0 else 1.0
            dead = run["diverged"] and step > 0
            layers.append({**{k: run[k] for k in (*CELL_SETTINGS, "lr", "cell", "seed")},
                           "step": step, "layer": layer,
                           "grad_preact_rms": np.nan if dead else rms,
                           "grad_weight_norm": 1.0, "saturation": 0.5,
                           "weight_update_rel": np.nan if step == 0 or dead else 1e-3,
                           "weight_distance_rel": 0.0 if step == 0 else 1e-2,
                           "weight_unchanged": 1.0 if step == 0 else 0.5})  # fmt: skip
        for epoch in range(1, epochs + 1):
            curves.append({**{k: run[k] for k in (*CELL_SETTINGS, "lr", "cell", "seed")},
                           "epoch": epoch, "step": 16 * epoch,
                           "train_loss": np.nan if run["diverged"] else 1.0 / epoch,
                           "val_accuracy": np.nan if run["diverged"] else 0.5 * epoch})  # fmt: skip
    return runs, pd.DataFrame(layers), pd.DataFrame(curves)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_small_studies_go_through_every_step(tmp_path_factory, data):
    runs, layers, curves = study(data.draw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = build_tables(runs, layers, curves, probe_inputs(runs), np.random.default_rng(0))
        out = tmp_path_factory.mktemp("degenerate")
        for name, df in tables.items():
            df.to_csv(out / f"{name}.csv", index=False)
        claims = evaluate(out)
        text = render(claims, tables["comparisons"], str(out))
        figs = build_figures({**tables, "layer_gradients": layers, "curves": curves})
    assert all(c.verdict in VERDICTS for c in claims)
    assert all(c.reason for c in claims if c.verdict == "not tested")
    assert text.count("## ") == len(claims)
    assert set(figs) and all(f is not None for f in figs.values())


def test_one_seed_per_arm_gives_no_p_value_and_says_why():
    out = compare_two([0.5], [0.9], np.random.default_rng(0))
    assert np.isnan(out["p_welch"]) and np.isnan(out["p_perm"]) and np.isnan(out["hedges_g"])
    assert out["diff"] == 0.9 - 0.5 and "one seed" in out["untestable"]
    assert compare_two([0.5, 0.6], [0.9, 1.0], np.random.default_rng(0))["untestable"] == ""


@pytest.mark.e2e
def test_a_one_seed_study_finishes_and_says_what_it_cannot_test(tmp_path):
    """A first quick try: one seed, two activations, two depths. Trains, then every table,
    figure and FINDINGS are written; comparisons have no p-values and say why."""
    grid = {"activation": ["sigmoid", "relu"], "depth": [2, 8], "norm": ["none"],
            "residual": [False]}  # fmt: skip
    write_config(tmp_path, {**TINY, "grid": grid, "seeds": [3], "pack": ["activation", "depth"]})
    snakemake(tmp_path)
    results = tmp_path / "results"
    comp = pd.read_csv(results / "tables" / "comparisons.csv")
    assert len(comp) and comp["p_welch"].isna().all() and comp["p_perm"].isna().all()
    assert comp["untestable"].str.contains("one seed").all()
    findings = (results / "FINDINGS.md").read_text()
    assert "no test: one seed in an arm" in findings
    assert len(list((results / "figures").glob("*.png"))) > 10
    runs = pd.read_csv(results / "tables" / "runs.csv")
    n_cells = runs["cell"].nunique()  # the study run, a run per cell, one per replica
    assert set(runs["seed"]) == {3} and len(store_runs(tmp_path)) == 1 + n_cells + len(runs)
