"""FINDINGS' rules on synthetic tables: every claim comes out supported, contradicted and
inconclusive as its evidence goes, partial evidence is qualified, and missing cells are not
tested; then the whole chain from synthetic runs to FINDINGS.md."""

from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd
import pytest
from claim_tables import (
    NS,
    SIG,
    association,
    cell_test,
    comparison,
    decay_fit,
    divergence,
    selected,
    survival,
    tables,
    theory,
    underflow,
)
from synthetic import CELL_SETTINGS, SATURATING, make_runs
from test_claims_time import final_runs, fits_table, init_runs

from vanishing.analysis.tables import write_tables
from vanishing.report.claims import CLAIMS
from vanishing.report.evidence import (
    CONTRADICTED,
    INCONCLUSIVE,
    NOT_TESTED,
    QUALIFIED,
    SUPPORTED,
    choose_grid,
    combine,
    tally,
)
from vanishing.report.findings import SUMMARY_HEADER, evaluate, write_findings

PLAIN = dict(norm="none", residual=False)
SPEC = {c.number: c for c in CLAIMS}


def verdict(number: int, t: dict) -> str:
    spec = SPEC[number]
    return spec.judge(t, spec.grids, ("activation", "depth", "norm", "residual"))["verdict"]


def p_of(d: int) -> float:
    return SIG if d else NS


def world_1(d):
    shape = {1: "exponential", -1: "power law", 0: "indistinguishable"}[d]
    return tables(decay_fits=[decay_fit(a, shape, **PLAIN) for a in SATURATING])


def world_2(d):
    arms = (("main", "sgd"), ("adam", "adam"))
    rows = [cell_test("log10_distance_ratio_final", -2.0 * d, p_of(d), grid, activation=a,
                      depth=16, optimizer=opt, **PLAIN)
            for a, (grid, opt) in product(SATURATING, arms)]  # fmt: skip
    return tables(cell_tests=rows)


def world_3(d):
    comp = [comparison("deepest_vs_shallowest", "final_train_loss", 2, 32, d * 1.0, p_of(d),
                       activation=a, **PLAIN) for a in SATURATING]  # fmt: skip
    surv = [survival("deepest_vs_shallowest", "steps_to_target", 2, 32, d * 200.0, p_of(d),
                     activation=a, **PLAIN) for a in SATURATING]  # fmt: skip
    mean, p_tost, p_holm = {1: (0.001, SIG, NS), -1: (0.3, 0.9, SIG), 0: (0.05, NS, NS)}[d]
    resets = [cell_test("reset_drop", mean, p_holm, p_tost=p_tost, margin=0.02, activation=a,
                        depth=16, **PLAIN) for a in SATURATING]  # fmt: skip
    learned = [selected(a, 16, final_test_accuracy_mean=0.6, settings=PLAIN) for a in SATURATING]
    assoc = [association("log10_grad_ratio_init", "final_train_loss", -0.8 * d, p_of(d))]
    return tables(comparisons=comp, survival=surv, cell_tests=resets, selected=learned,
                  associations=assoc)  # fmt: skip


def world_4(d):
    comp = [comparison(f"activation_vs_{b}", "log10_grad_ratio_init", b, "relu", 3.0 * d,
                       p_of(d), "matched_init", depth=16, init="pytorch", **PLAIN)
            for b in SATURATING]  # fmt: skip
    measured, ceiling = {1: (0.6, 0.1), -1: (0.6, 0.58), 0: (-0.1, 0.0)}[d]
    th = [
        theory(a, 16, 0.6, measured, "matched_init", ceiling=ceiling, **PLAIN) for a in SATURATING
    ]
    cells = [cell_test("saturation_change", 0.2 * d, p_of(d), "matched_init", activation=a,
                       depth=16, **PLAIN) for a in SATURATING]  # fmt: skip
    cells += [cell_test("grad_ratio_change", -0.5, SIG, "matched_init", activation=a, depth=16,
                        **PLAIN) for a in SATURATING]  # fmt: skip
    return tables(comparisons=comp, theory=th, cell_tests=cells)


def world_5(d):
    n_below = {1: 10, -1: 0, 0: 5}[d]
    floors = [underflow(a, 256, n_below, **PLAIN) for a in SATURATING]
    low, high = {1: (0.08, 0.15), -1: (0.5, 0.7), 0: (0.15, 0.5)}[d]
    sel = [selected(a, 256, "deep", final_test_accuracy_ci_low=low,
                    final_test_accuracy_ci_high=high, settings=dict(epochs=20, **PLAIN))
           for a in SATURATING]  # fmt: skip
    return tables(underflow=floors, selected=sel)


def world_6(d):
    rows = []
    for b in SATURATING:
        for grid, init, metric, size in (
            ("main", "auto", "abs_log10_grad_ratio_init", 3.0),
            ("matched_init", "lecun", "abs_log10_grad_ratio_init", 3.0),
            ("main", "auto", "saturation_final", 0.3),
        ):
            rows.append(comparison(f"activation_vs_{b}", metric, b, "relu", -size * d, p_of(d),
                                   grid, depth=16, init=init, **PLAIN))  # fmt: skip
    return tables(comparisons=rows)


def world_7(d):
    comp = [comparison("norm_vs_none", "lr_window", "none", "batch", 2.0 * d, p_of(d),
                       activation=a, depth=16, residual=False) for a in SATURATING]  # fmt: skip
    div = [divergence("norm_vs_none", "none", "batch", -0.3 * d, p_of(d), activation=a, depth=16,
                      residual=False) for a in SATURATING]  # fmt: skip
    return tables(comparisons=comp, divergence=div)


def world_8(d):
    return tables(survival=[survival("norm_vs_none", "steps_to_target", "none", "batch",
                                     -100.0 * d, p_of(d), activation=a, depth=16, residual=False)
                            for a in SATURATING])  # fmt: skip


def world_9(d):
    metrics = (
        "abs_log10_grad_ratio_init",
        "abs_log10_grad_ratio_early",
        "abs_log10_grad_ratio_final",
    )
    return tables(comparisons=[comparison("norm_vs_none", m, "none", "batch", -1.0 * d, p_of(d),
                                          activation=a, depth=16, residual=False)
                               for m, a in product(metrics, ("sigmoid", "relu"))])  # fmt: skip


def world_10(d):
    rows = [comparison("residual_vs_plain", m, False, True, sign * d, p_of(d), "deep", activation=a,
                       depth=64, norm=n, residual_scale="inv_sqrt_depth")
            for (m, sign), a, n in product((("abs_log10_grad_ratio_init", -1.0),
                                            ("final_test_accuracy", 0.5)),
                                           ("sigmoid", "relu"), ("none", "batch"))]  # fmt: skip
    return tables(comparisons=rows)


def world_11(d):
    measured, ci = {1: (0.61, 0.02), -1: (0.9, 0.02), 0: (0.9, 0.5)}[d]
    return tables(theory=[theory(a, 16, 0.6, measured, ci=ci, norm=n, residual=r)
                          for a, n, r in product(("sigmoid", "relu"), ("none", "batch"),
                                                 (False, True))])  # fmt: skip


def world_12(d):  # through time (issue 18): the synthetic tables of test_claims_time
    fits = fits_table("pow" if d == -1 else "exp")
    return {**tables(), "time_fits": fits if d else fits.assign(shape="indistinguishable")}


def world_13(d):
    slopes = {1: (0.2, 0.15), -1: (0.15, 0.2), 0: (0.15, 0.15)}[d]
    return {**tables(), "time_runs": init_runs(*slopes)}


def world_14(d):
    runs = {1: (0.01, 0.1, 0.6, 0.27), -1: (0.1, 0.05, 0.27, 0.6), 0: (0.05, 0.1, 0.6, 0.6)}[d]
    return {**tables(), "time_runs": final_runs(*runs)}


WORLDS = {n: globals()[f"world_{n}"] for n in SPEC}
EXPECTED = {1: SUPPORTED, -1: CONTRADICTED, 0: INCONCLUSIVE}


@pytest.mark.parametrize("number", sorted(SPEC))
@pytest.mark.parametrize("direction", [1, -1, 0])
def test_every_claim_comes_out_each_way(number, direction):
    """The same rule gives supported, contradicted or inconclusive as the tables go."""
    assert verdict(number, WORLDS[number](direction)) == EXPECTED[direction]


def test_mean_field_decay_is_qualified_sigmoid_exponential_tanh_power_law():
    t = tables(decay_fits=[decay_fit("sigmoid", "exponential", **PLAIN),
                           decay_fit("tanh", "power law", -0.02, **PLAIN)])  # fmt: skip
    assert verdict(1, t) == QUALIFIED


def test_missing_cells_are_not_tested_with_a_reason(tmp_path):
    empty = tables()
    for number, spec in SPEC.items():
        fields = spec.judge(empty, spec.grids, ())
        assert fields["verdict"] == NOT_TESTED and fields["reason"], number
    assert all(c.verdict == NOT_TESTED for c in evaluate(tmp_path / "nowhere"))


def test_a_reset_is_judged_only_where_the_net_learned():
    """Cells at chance have nothing to lose by a reset: they are left out, not counted as
    'nothing lost'."""
    t = world_3(1)
    t["selected"] = pd.DataFrame([selected(a, 16, final_test_accuracy_mean=0.12, settings=PLAIN)
                                  for a in SATURATING])  # fmt: skip
    fields = SPEC[3].judge(t, SPEC[3].grids, ())
    assert dict(fields["parts"])["(c) layer reset"] == NOT_TESTED


def test_own_init_rows_do_not_count_as_a_shared_init():
    t = world_6(1)
    t["comparisons"] = t["comparisons"][t["comparisons"]["grid"] == "main"]
    parts = dict(SPEC[6].judge(t, SPEC[6].grids, ())["parts"])
    assert parts["(b) shared init, vs sigmoid"] == NOT_TESTED
    assert parts["(a) own init, vs sigmoid"] == SUPPORTED


def test_a_study_with_its_own_sub_grid_names_is_judged_on_its_first():
    t = world_7(1)
    t["comparisons"]["grid"] = "mine"
    t["divergence"]["grid"] = "mine"
    assert choose_grid(t["comparisons"], ("main",)) == "mine"
    assert verdict(7, t) == SUPPORTED


def test_tally_and_combine_rules():
    assert tally([]) == NOT_TESTED and tally(["holds", "holds"]) == SUPPORTED
    assert tally(["holds", "null"]) == QUALIFIED and tally(["holds", "opposite"]) == QUALIFIED
    assert tally(["opposite", "null"]) == CONTRADICTED and tally(["null"]) == INCONCLUSIVE
    assert combine([SUPPORTED, NOT_TESTED]) == QUALIFIED
    assert combine([CONTRADICTED, NOT_TESTED]) == CONTRADICTED
    assert combine([INCONCLUSIVE, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([SUPPORTED, CONTRADICTED]) == QUALIFIED
    assert combine([NOT_TESTED, NOT_TESTED]) == NOT_TESTED


# ---------------------------------------------------------------- the whole chain


def make_layers(runs: pd.DataFrame, final_log_ratio: np.ndarray) -> pd.DataFrame:
    """layer_gradients rows at step 0 and 100: RMS 1 at the top layer, 10**ratio at layer 1."""
    rows = []
    for (_, run), final in zip(runs.iterrows(), final_log_ratio, strict=True):
        d = int(run["depth"])
        for step, log_ratio in ((0, np.log10(run["grad_ratio_init"])), (100, final)):
            for layer in range(1, d + 1):
                rms = 10 ** (log_ratio * (d - layer) / max(d - 1, 1))
                rows.append({**{k: run[k] for k in (*CELL_SETTINGS, "lr", "cell", "seed")},
                             "step": step, "layer": layer, "grad_preact_rms": rms,
                             "grad_weight_norm": rms, "saturation": 0.0,
                             "weight_update_rel": np.nan if step == 0 else rms / 100,
                             "weight_distance_rel": 0.0 if step == 0 else rms / 10,
                             "weight_unchanged": 1.0 if step == 0 else 0.0})  # fmt: skip
    return pd.DataFrame(rows)


def world(effects=True, seeds=range(5)):
    """Runs where (with ``effects``) plain sigmoid/tanh nets lose 10**0.5 of gradient per layer
    and deep ones do not train, relu loses 10**0.1, and batch norm or skips fix both."""
    rng = np.random.default_rng(1)
    rows, finals = [], []
    for a, d, norm, res, s in product(("sigmoid", "tanh", "relu"), (2, 8), ("none", "batch"),
                                      (False, True), seeds):  # fmt: skip
        slope = {"sigmoid": -0.5, "tanh": -0.5, "relu": -0.1}[a]
        plain = norm == "none" and not res
        log_ratio = slope * d if plain and effects else 0.0
        acc = 0.2 if plain and effects and a in SATURATING and d >= 8 else 0.9
        acc += rng.normal(0, 0.01)
        rows.append(dict(activation=a, depth=d, norm=norm, residual=res, seed=s,
                         grad_ratio_init=10 ** (log_ratio + rng.normal(0, 0.05)),
                         final_val_accuracy=acc, final_test_accuracy=acc,
                         final_train_loss=(2.3 if acc < 0.5 else 0.3)
                         + rng.normal(0, 0.01)))  # fmt: skip
        finals.append(log_ratio + rng.normal(0, 0.05))
    runs = make_runs(rows)
    return runs, make_layers(runs, np.array(finals))


def test_the_chain_from_runs_to_findings(tmp_path):
    """Synthetic runs through the real statistics to FINDINGS.md: batch norm's and the skips'
    fixes show where they were built in, nothing shows where nothing was."""
    runs, layers = world()
    write_tables(runs, layers, tmp_path / "tables")
    claims = {c.number: c for c in write_findings(tmp_path / "tables", tmp_path / "F.md")}
    assert claims[6].verdict in (SUPPORTED, QUALIFIED)  # relu closer to balance than sigmoid
    assert dict(claims[9].parts)["(a) at init"] == SUPPORTED
    assert dict(claims[3].parts)["(a) training loss"] == SUPPORTED
    text = (tmp_path / "F.md").read_text()
    assert text.count("## ") == len(CLAIMS) and SUMMARY_HEADER in text
    assert "Rule: " in text and "[holds]" in text
    null_runs, null_layers = world(effects=False)
    write_tables(null_runs, null_layers, tmp_path / "null")
    null = {c.number: c for c in evaluate(tmp_path / "null")}
    assert dict(null[9].parts)["(a) at init"] == INCONCLUSIVE
    assert dict(null[3].parts)["(a) training loss"] == INCONCLUSIVE


def test_verdict_table_for_the_report_front_page():
    """The reStructuredText summary renders as a table with one row per claim (no stray
    enumerated lists, no docutils warnings), each with its verdict, its deciding number and,
    untested, its reason."""
    from docutils.core import publish_parts

    from vanishing.report.evidence import Claim
    from vanishing.report.findings import render_verdicts_rst

    claims = [
        Claim(1, "Gradients *shrink* with depth_", "q", "r", "supported", decisive="10^-3 | x"),
        Claim(2, "Deep nets | train", "q", "r", "not tested", reason="no `tanh` cells"),
    ]
    html = publish_parts(render_verdicts_rst(claims), writer="html",
                         settings_overrides={"report_level": 1})["html_body"]  # fmt: skip
    assert html.count("<tr>") == 3 and "system-message" not in html and "<ol" not in html
    assert "1. Gradients *shrink* with depth_" in html and "<strong>supported</strong>" in html
    assert "<strong>not tested</strong> (no `tanh` cells)" in html and "10^-3 | x" in html
