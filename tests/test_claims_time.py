"""Claims through time (report.claims_time) on synthetic tables, each rule both ways, and the
analysis behind them (analysis.time_profiles): theory's factors by hand, slopes and ratios of
known profiles, the J tests on exponential and power-law data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from vanishing.analysis.time_profiles import predicted_factors, time_fits, time_runs
from vanishing.report.claims_time import judge_time_decay, judge_time_gated, judge_time_saturation
from vanishing.report.evidence import num
from vanishing.settings import BY_NAME, CELL_KEYS

RNG = np.random.default_rng(0)


def test_theory_factors_by_hand():
    # relu at He's sigma_w2 = 2: chi = 2 * 1/2 = 1 at every step
    np.testing.assert_allclose(predicted_factors("rnn", "relu", "auto", "auto", "auto",
                                                 "cmudict", 20), 1.0)  # fmt: skip
    # GRU at the zero state: z = r = 1/2, factor 1/4 + sigma_w2/16; LSTM: sigmoid(1)^2 + 1/16
    np.testing.assert_allclose(predicted_factors("gru", "tanh", "auto", "auto", "auto",
                                                 "cmudict", 12), 0.3125)  # fmt: skip
    lstm = predicted_factors("lstm", "tanh", "auto", 2.0, "auto", "cmudict", 12)
    np.testing.assert_allclose(lstm, expit(1) ** 2 + 2 / 16)
    # IRNN: identity keeps a relu state exactly on blank steps; adding's inputs: no prediction
    np.testing.assert_allclose(predicted_factors("rnn", "relu", "identity", "auto", "auto",
                                                 "cmudict", 12), 1.0)  # fmt: skip
    assert np.isnan(
        predicted_factors("rnn", "relu", "identity", "auto", "auto", "adding", 12)
    ).all()
    # tanh at sigma_w2 0.25: the state decays to 0, where tanh' = 1: chi -> 0.25, from below
    chis = predicted_factors("rnn", "tanh", "auto", 0.25, "auto", "cmudict", 40)
    assert chis[0] < chis[-1] and chis[-1] == pytest.approx(0.25, rel=1e-3)


def settings(**kw) -> dict:
    base = {k: BY_NAME[k].default for k in CELL_KEYS}
    base.update(data="cmudict", arch="rnn", activation="tanh", depth=1, norm="none",
                residual=False, seq_len=20)  # fmt: skip
    return {**base, **kw}


def test_slope_and_ratio_of_a_known_profile_and_censoring():
    """log10 rms = -3 + 0.1 t: slope 0.1 decades per step, ratio step 8 / step 20 = -1.2;
    with step 8's gradient underflowed, the ratio is the bound and flagged."""
    runs, layers = [], []
    for seed, zero in ((0, False), (1, True)):
        s = settings(seed=seed, lr=0.1, cell="c", final_test_accuracy=0.3, final_val_accuracy=0.3)
        runs.append(s)
        for step in (0, 50):
            for t in range(1, 21):
                rms = 0.0 if zero and t <= 8 else 10 ** (-3 + 0.1 * t)
                layers.append(dict(cell="c", lr=0.1, seed=seed, step=step, layer=t,
                                   grad_preact_rms=rms))  # fmt: skip
    out = time_runs(pd.DataFrame(runs), pd.DataFrame(layers))
    assert list(out["stage"]) == ["init", "final", "init", "final"]
    a = out.iloc[0]
    assert a["time_slope"] == pytest.approx(0.1) and a["log10_grad_ratio_time"] == pytest.approx(
        -1.2
    )
    assert not a["ratio_censored"] and a["chance"] == 0.25
    b = out.iloc[2]
    assert b["ratio_censored"] and b["log10_grad_ratio_time"] == pytest.approx(
        np.log10(np.finfo(np.float32).tiny) - (-1.0)
    )
    # tanh at Xavier's sigma_w2 = 1: theory's slope is small and positive (chi < 1 while q > 0)
    assert 0 < a["predicted_slope"] < 0.1


def fits_table(shape: str, activation="tanh") -> pd.DataFrame:
    rng = np.random.default_rng(1)  # the J test keeps a true model 95% of the time: fix the draw
    rows = []
    for T in (16, 24, 40, 72, 136):
        d = T - 8
        for seed in range(4):
            value = -0.05 * d if shape == "exp" else -1.5 * np.log10(d)
            rows.append({**settings(activation=activation, seq_len=T), "seed": seed,
                         "stage": "init", "ratio_censored": False, "predicted_slope": 0.05,
                         "log10_grad_ratio_time": value + rng.normal(0, 0.02)})  # fmt: skip
    return time_fits(pd.DataFrame(rows)).assign(grid="recurrent_profile")


def test_decay_claim_both_ways():
    holds = judge_time_decay({"time_fits": fits_table("exp")}, ("recurrent_profile",), ())
    assert holds["verdict"] == "supported" and "exponential" in holds["decisive"]
    against = judge_time_decay({"time_fits": fits_table("pow")}, ("recurrent_profile",), ())
    assert against["verdict"] == "contradicted" and "power law" in against["decisive"]
    relu = judge_time_decay({"time_fits": fits_table("exp", "relu")}, ("recurrent_profile",), ())
    assert relu["verdict"] == "not tested"  # the claim is about saturating activations


def init_runs(tanh_slope: float, relu_slope: float, predicted=(0.1, 0.1)) -> pd.DataFrame:
    """Elman tanh and relu nets at chi 0.5, measured at the given decades per step, theory's
    rates ``predicted`` (tanh, relu): equal by default, so theory expects no effect."""
    rows = []
    for act, sw2, slope, pred in (("tanh", 0.5, tanh_slope, predicted[0]),
                                  ("relu", 1.0, relu_slope, predicted[1])):  # fmt: skip
        for seed in range(5):
            rows.append({**settings(activation=act, sigma_w2=sw2), "seed": seed, "stage": "init",
                         "time_slope": slope + RNG.normal(0, 0.005), "predicted_slope": pred,
                         "grid": "recurrent_profile"})  # fmt: skip
    return pd.DataFrame(rows)


def test_saturation_claim_both_ways():
    grids = ("recurrent_profile",)
    holds = judge_time_saturation({"time_runs": init_runs(0.2, 0.15)}, grids, ())
    assert holds["verdict"] == "supported"
    against = judge_time_saturation({"time_runs": init_runs(0.15, 0.2)}, grids, ())
    assert against["verdict"] == "contradicted"
    null = judge_time_saturation({"time_runs": init_runs(0.15, 0.15)}, grids, ())
    assert null["verdict"] == "inconclusive"


def test_saturation_pairs_theory_decides_are_foregone():
    """Theory's rates 0.2 vs 0.15 decades per step at T apart by 0.05 x (T - 8) decades, 0.25 or
    more: theory decides the pair before the data (foregone), and says so beside it; the data
    agreeing or not does not make it evidence."""
    grids = ("recurrent_profile",)
    decided = judge_time_saturation({"time_runs": init_runs(0.2, 0.15, (0.2, 0.15))}, grids, ())
    assert decided["verdict"] == "foregone", decided["verdict"]
    (row,) = [e for e in decided["evidence"] if e.startswith("(a) matched chi cmudict")]
    T = int(settings()["seq_len"])
    assert f"tanh 0.2 vs relu 0.15 decades per step, {num(0.05 * (T - 8))} decades apart" in row
    assert "*as theory predicts*" in row and "(theory decides this row)" in row
    # 0.01 per step apart: within the margin, theory expects no effect and the row stays open
    open_row = judge_time_saturation({"time_runs": init_runs(0.2, 0.15, (0.11, 0.1))}, grids, ())
    assert open_row["verdict"] == "supported"


def final_runs(gated_slope, tanh_slope, gated_acc, tanh_acc) -> pd.DataFrame:
    rows = []
    for T in (16, 48):
        for arch, slope, acc in (("gru", gated_slope, gated_acc), ("rnn", tanh_slope, tanh_acc)):
            for lr, bonus in ((0.01, 0.0), (0.003, -0.1)):  # the lr selected is 0.01
                for seed in range(4):
                    rows.append({**settings(arch=arch, seq_len=T), "lr": lr, "seed": seed,
                                 "cell": f"{arch}{T}", "stage": "final", "chance": 0.25,
                                 "time_slope": slope + RNG.normal(0, 0.002) - bonus,
                                 "predicted_slope": 0.1, "final_val_accuracy": acc + bonus,
                                 "final_test_accuracy": acc + bonus,
                                 "grid": "recurrent"})  # fmt: skip
    return pd.DataFrame(rows)


def test_gated_claim_both_ways():
    holds = judge_time_gated({"time_runs": final_runs(0.01, 0.1, 0.6, 0.27)}, ("recurrent",), ())
    assert holds["verdict"] == "supported", holds["evidence"]
    against = judge_time_gated({"time_runs": final_runs(0.1, 0.05, 0.27, 0.6)}, ("recurrent",), ())
    assert against["verdict"] == "contradicted", against["evidence"]
    both = judge_time_gated({"time_runs": final_runs(0.05, 0.1, 0.6, 0.6)}, ("recurrent",), ())
    assert both["verdict"] == "inconclusive"  # 2x smaller is not "several"; both learn


def test_time_profile_figure_draws_one_line_per_T_and_stage():
    from vanishing.report.figures_time import plot_time_profiles

    runs, layers = [], []
    for T in (12, 20):
        for arch in ("rnn", "gru"):
            cell = f"{arch}{T}"
            runs.append({**settings(arch=arch, seq_len=T), "cell": cell, "seed": 0, "lr": 0.1})
            for step in (0, 30):
                for t in range(1, T + 1):
                    rms = 0.0 if (arch == "rnn" and t == 1) else 10 ** (-0.1 * (T - t))
                    layers.append(dict(cell=cell, seed=0, lr=0.1, step=step, layer=t,
                                       grad_preact_rms=rms))  # fmt: skip
    fig = plot_time_profiles(pd.DataFrame(layers), pd.DataFrame(runs))
    lines = [ln.get_gid() for ax in fig.axes for ln in ax.get_lines() if ln.get_gid()]
    assert sorted(lines) == sorted(f"T{T}-{s}" for T in (12, 20) for s in ("init", "final")
                                   for _ in ("rnn", "gru"))  # fmt: skip
    ax = fig.axes[0]
    y = ax.get_lines()[0].get_ydata()
    assert np.isnan(y[0]) or y[0] == pytest.approx(-1.1)  # the underflowed step is left out
