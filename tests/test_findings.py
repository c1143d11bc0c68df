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
from vanishing.report.evidence import (
    CONTRADICTED,
    FOREGONE,
    INCONCLUSIVE,
    NOT_TESTED,
    QUALIFIED,
    SUPPORTED,
    choose_grid,
    combine,
    tally,
)
from vanishing.report.findings import SUMMARY_HEADER, evaluate, write_findings
from vanishing.report.registry import CLAIMS, judge

PLAIN = dict(norm="none", residual=False)
SPEC = {c.number: c for c in CLAIMS}


def verdict(number: int, t: dict) -> str:
    spec = SPEC[number]
    return judge(spec)(t, spec.grids, ("activation", "depth", "norm", "residual"))["verdict"]


def p_of(d: int) -> float:
    return SIG if d else NS


def world_1(d):
    """At a named sigma_w2 whose value the tables lack, theory cannot say: the rows are open."""
    shape = {1: "exponential", -1: "power law", 0: "indistinguishable"}[d]
    return tables(decay_fits=[decay_fit(a, shape, sigma_w2="critical", **PLAIN)
                              for a in SATURATING])  # fmt: skip


def world_2(d, **given):
    """Layer 1 of deep sigmoid/tanh nets moves less (d = 1) than in a critical relu net and in
    the batch-norm net of the same depth, under SGD and Adam."""
    metric = "log10_distance_ratio_final"
    rows = [
        comparison(
            f"activation_vs_{b}",
            metric,
            b,
            "relu",
            2.0 * d,
            p_of(d),
            grid,
            depth=16,
            init="auto",
            optimizer=opt,
            **PLAIN,
            **given,
        )
        for b, (grid, opt) in product(SATURATING, (("main", "sgd"), ("adam", "adam")))
    ]
    rows += [comparison("norm_vs_none", metric, "none", "batch", 2.0 * d, p_of(d), activation=a,
                        depth=16, optimizer="sgd", residual=False, **given)
             for a in SATURATING]  # fmt: skip
    return tables(comparisons=rows)


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
            ("main", "auto", "stuck_final", 0.3),
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


def test_decay_shapes_theory_decides_are_foregone():
    """Sigmoid at Xavier init (chi* < 1: exponential) and tanh at Xavier init (the critical
    point: power law) are decided before the data: the part is foregone, each row says whether
    the data went as theory predicts; tanh at PyTorch's default (sigma_w2 = 1/3) is exponential,
    and a resolved sigma_w2 = 4 is chaotic."""
    t = tables(decay_fits=[decay_fit("sigmoid", "exponential", **PLAIN),
                           decay_fit("tanh", "power law", -0.02, **PLAIN),
                           decay_fit("tanh", "exponential", -0.24, init_scheme="pytorch", width=64,
                                     **PLAIN),
                           decay_fit("tanh", "exponential", -0.1, sigma_w2_value=4.0,
                                     sigma_b2_value=0.0, **PLAIN)])  # fmt: skip
    fields = judge(SPEC[1])(t, SPEC[1].grids, ())
    assert fields["verdict"] == FOREGONE and fields["judged_on"] == ""
    lines = [ln for ln in fields["evidence"] if "Theory:" in ln]
    assert "chi* gives exponential" in lines[0] and "*as theory predicts*" in lines[0]
    assert "chi* gives power law" in lines[1] and "*as theory predicts*" in lines[1]
    assert "chi* gives exponential (-0.242" in lines[2] and "*as theory predicts*" in lines[2]
    assert "chi* gives explodes (0.0672" in lines[3] and "*departs from theory*" in lines[3]
    assert fields["theory"] == "decides 4 of 4 rows (2 as the brief says, 2 against it)"
    assert fields["data"] == "3 of 4 rows hold, 1 opposite, 0 null; 1 depart from theory"


def test_missing_cells_are_not_tested_with_a_reason(tmp_path):
    empty = tables()
    for number, spec in SPEC.items():
        fields = judge(spec)(empty, spec.grids, ())
        assert fields["verdict"] == NOT_TESTED and fields["reason"], number
    assert all(c.verdict == NOT_TESTED for c in evaluate(tmp_path / "nowhere"))


def test_the_layer_reset_runs_on_every_deep_cell_with_its_control_beside():
    """Cells at chance are judged too (no 'learned' filter), each beside the relu control."""
    t = world_3(1)
    t["selected"] = pd.DataFrame([selected(a, 16, final_test_accuracy_mean=0.12, settings=PLAIN)
                                  for a in SATURATING])  # fmt: skip
    control = cell_test("reset_drop", 0.4, SIG, p_tost=0.9, margin=0.02, activation="relu",
                        depth=16, **PLAIN)  # fmt: skip
    t["cell_tests"] = pd.concat([t["cell_tests"], pd.DataFrame([control])], ignore_index=True)
    fields = judge(SPEC[3])(t, SPEC[3].grids, ())
    assert dict(fields["parts"])["(c) layer reset"] == SUPPORTED
    resets = [ln for ln in fields["evidence"] if ln.startswith("(c) layer reset reset_drop")]
    assert len(resets) == len(SATURATING)
    assert all("relu control 0.4 [0.3, 0.5]" in ln for ln in resets)


def test_censored_arms_are_bounds_tested_by_ranks():
    """A deep sigmoid arm whose layer 1 never moved is censored: printed as a bound, judged by
    the rank test's p (Welch's is undefined on constants), never by a p set by hand."""
    for p_rank, expected in ((SIG, SUPPORTED), (1.0, INCONCLUSIVE)):
        t = world_2(1, n_censored_baseline=5, n_censored_treatment=0, p_rank=p_rank,
                    p_welch=np.nan)  # fmt: skip
        fields = judge(SPEC[2])(t, SPEC[2].grids, ())
        assert fields["verdict"] == expected
        line = next(ln for ln in fields["evidence"] if "vs sigmoid log10" in ln)
        assert "< 10^1 (5 of 5 seeds censored)" in line and "rank test" in line


def test_claim_2_is_judged_at_the_deepest_depth_where_the_exact_test_can_reach_significance():
    """Every row at the exact rank test's floor for 5 vs 5 seeds (2/252 = 0.0079) at depths 8,
    16 and 32: judged on the 6 rows at depth 32, Holm lifts the floor to 0.048 and the claim
    can hold; the shallower rows do not count, either way. Were all 18 rows judged, Holm would
    lift it to 0.14 and no data could make one hold."""
    floor = 2 / 252

    def world(p_deepest, p_shallow, d_shallow=1):
        parts = []
        for depth, p, d in ((8, p_shallow, d_shallow), (16, p_shallow, d_shallow),
                            (32, p_deepest, 1)):  # fmt: skip
            t = world_2(1)["comparisons"].assign(depth=depth, p_welch=np.nan, p_rank=p,
                                                 diff=2.0 * d)  # fmt: skip
            parts.append(t)
        return tables(comparisons=pd.concat(parts, ignore_index=True).to_dict("records"))

    fields = judge(SPEC[2])(world(floor, floor), SPEC[2].grids, ())
    assert fields["verdict"] == SUPPORTED and fields["data"].startswith("6 of 6 rows hold")
    judged_rows = [ln for ln in fields["evidence"] if "log10_distance_ratio_final:" in ln]
    assert len(judged_rows) == 6 and all("Holm p = 0.048" in ln for ln in judged_rows)
    # the deepest rows decide: shallower rows contrary and significant change nothing ...
    assert judge(SPEC[2])(world(floor, 1e-6, -1), SPEC[2].grids, ())["verdict"] == SUPPORTED
    # ... and significant shallower rows do not rescue deepest rows at p = 0.5
    assert judge(SPEC[2])(world(0.5, 1e-6), SPEC[2].grids, ())["verdict"] == INCONCLUSIVE
    assert 18 * floor > 0.05 > 6 * floor


def test_holm_runs_within_a_claim():
    """Four rows at raw p = 0.02 each: significant alone, not after Holm over the claim's rows
    (0.02 x 4 = 0.08); the rows of other claims do not count."""
    t = world_7(1)
    t["comparisons"] = t["comparisons"].assign(p_welch=0.02, p_holm=0.02)
    t["divergence"] = t["divergence"].assign(p_fisher=0.02, p_holm=0.02)
    assert verdict(7, t) == INCONCLUSIVE
    t["divergence"] = t["divergence"].iloc[0:0]
    t["comparisons"] = t["comparisons"].iloc[:1]
    assert verdict(7, t) == QUALIFIED  # one row left, 0.02 < 0.05; the divergence part untested


def test_own_init_rows_do_not_count_as_a_shared_init():
    t = world_6(1)
    t["comparisons"] = t["comparisons"][t["comparisons"]["grid"] == "main"]
    parts = dict(judge(SPEC[6])(t, SPEC[6].grids, ())["parts"])
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


def make_layers(runs: pd.DataFrame, final_log_ratio: np.ndarray, stuck=None) -> pd.DataFrame:
    """layer_gradients rows at step 0 and 100: RMS 1 at the top layer, 10**ratio at layer 1;
    no stuck unit at step 0, the run's ``stuck`` fraction in every layer at step 100."""
    rows = []
    stuck = np.zeros(len(runs)) if stuck is None else stuck
    for (_, run), final, frac in zip(runs.iterrows(), final_log_ratio, stuck, strict=True):
        d = int(run["depth"])
        for step, log_ratio in ((0, np.log10(run["grad_ratio_init"])), (100, final)):
            for layer in range(1, d + 1):
                rms = 10 ** (log_ratio * (d - layer) / max(d - 1, 1))
                rows.append({**{k: run[k] for k in (*CELL_SETTINGS, "lr", "cell", "seed")},
                             "step": step, "layer": layer, "grad_preact_rms": rms,
                             "grad_weight_norm": rms, "saturation": 0.0,
                             "stuck": 0.0 if step == 0 else frac,
                             "weight_update_rel": np.nan if step == 0 else rms / 100,
                             "weight_distance_rel": 0.0 if step == 0 else rms / 10,
                             "weight_unchanged": 1.0 if step == 0 else 0.0})  # fmt: skip
    return pd.DataFrame(rows)


def world(effects=True, seeds=range(5)):
    """Runs where (with ``effects``) plain sigmoid/tanh nets lose 10**0.5 of gradient per layer
    and deep ones do not train, relu loses 10**0.1, and batch norm or skips fix both; trained,
    plain sigmoid/tanh nets have 30% stuck units, relu nets 5%."""
    rng, rng_stuck = np.random.default_rng(1), np.random.default_rng(2)
    rows, finals, stuck = [], [], []
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
        frac = 0.3 if plain and effects and a in SATURATING else 0.05
        stuck.append(frac + rng_stuck.uniform(-0.02, 0.02))
    runs = make_runs(rows)
    return runs, make_layers(runs, np.array(finals), np.array(stuck))


def test_the_chain_from_runs_to_findings(tmp_path):
    """Synthetic runs through the real statistics to FINDINGS.md: batch norm's and the skips'
    fixes show where they were built in, nothing shows where nothing was."""
    runs, layers = world()
    write_tables(runs, layers, tmp_path / "tables")
    claims = {c.number: c for c in write_findings(tmp_path / "tables", tmp_path / "F.md")}
    assert claims[6].verdict in (SUPPORTED, QUALIFIED)  # relu closer to balance than sigmoid
    assert dict(claims[6].parts)["(c) stuck units in training, vs tanh"] == SUPPORTED
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
    assert dict(null[6].parts)["(c) stuck units in training, vs tanh"] == INCONCLUSIVE


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


def test_every_claim_entry_joins_its_judge_figure_and_families():
    """One registry entry per claim: its judge and its figure are found by name, in modules
    split the same way (claims 1-6: claims/figures_claims; 7-11: remedies/figures_remedies;
    12-14: claims_time/figures_time);
    the catalog's figure carries the entry's sub-grids and tables; its families exist, the
    activation ones derived from the activation registry."""
    import inspect

    from vanishing.analysis.comparisons import FAMILIES
    from vanishing.report import catalog, registry
    from vanishing.report.figures import plot_function
    from vanishing.report.registry import ACTIVATION_FAMILIES

    names = {f[0] for f in FAMILIES}
    pair = {"vanishing.report.claims": "vanishing.report.figures_claims",
            "vanishing.report.remedies": "vanishing.report.figures_remedies",
            "vanishing.report.claims_time": "vanishing.report.figures_time"}  # fmt: skip
    assert [c.number for c in CLAIMS] == list(range(1, len(CLAIMS) + 1))
    for spec in CLAIMS:
        rule, plot = judge(spec), plot_function(spec.figure)
        assert inspect.getdoc(rule).startswith(f"Claim {spec.number}")
        assert pair[rule.__module__] == plot.__module__, spec.number
        fig = catalog.BY_NAME[spec.figure]
        shown = "-".join(str(n) for n in registry.shown_by(spec.figure))  # 12-13 share one
        assert (fig.subcategory, fig.grids, fig.tables) == (
            f"Claim {shown}",
            spec.grids,
            spec.tables,
        )
        assert set(spec.families) <= names, spec.number
    assert set(ACTIVATION_FAMILIES) == {f"activation_vs_{a}" for a in SATURATING} <= names
    figures = {c.figure for c in CLAIMS}  # one figure per claim, or shared (claims 12 and 13)
    assert sum(f.category == catalog.CLAIMS for f in catalog.FIGURES) == len(figures)


def test_theory_decides_a_comparison_only_beyond_its_margin():
    """relu vs sigmoid at init: theory.csv's predicted ratios decide the row when they differ by
    0.25 decades or more (the part is then foregone), leave it open when they do not, and say
    'outside theory' for a residual branch that ends in relu, whatever the data."""
    from claim_tables import settings as cell

    def theory_row(activation, ratio, **given):
        row = cell("main", activation=activation, depth=16, **PLAIN, **given)
        row.pop("init")
        return {**row, "init_scheme": "kaiming" if activation == "relu" else "xavier",
                "predicted_log10_ratio": ratio}  # fmt: skip

    def judged_6(relu_ratio, sig_ratio, **given):
        t = world_6(1)
        t["comparisons"] = t["comparisons"][t["comparisons"]["grid"] == "main"].assign(**given)
        given.pop("residual", None)
        t["theory"] = pd.DataFrame([theory_row("relu", relu_ratio, **given),
                                    theory_row("sigmoid", sig_ratio, **given)])  # fmt: skip
        return dict(judge(SPEC[6])(t, SPEC[6].grids, ())["parts"]), judge(SPEC[6])(
            t, SPEC[6].grids, ()
        )["evidence"]

    parts, evidence = judged_6(0.0, -5.0)
    assert parts["(a) own init, vs sigmoid"] == FOREGONE
    assert any("theory decides this row" in e and "*as theory predicts*" in e for e in evidence)
    parts, _ = judged_6(-4.9, -5.0)  # 0.1 decades apart: theory expects no effect, row open
    assert parts["(a) own init, vs sigmoid"] == SUPPORTED
    from vanishing.report.predictions import comparison_theory

    t = world_6(1)
    t["theory"] = pd.DataFrame([theory_row("relu", 0.0), theory_row("sigmoid", -5.0)])
    row = t["comparisons"].iloc[0].copy()
    predict = comparison_theory(t, "main", "abs_log10_grad_ratio_init", -1)
    assert predict(row).outcome == "holds" and predict(row).decides
    row["residual"], row["block"] = True, "branch_act"  # the non-centred block
    assert predict(row).text.startswith("outside theory (a residual branch ending in relu")
    assert comparison_theory(t, "main", "final_test_accuracy", 1)(row).outcome == ""


def test_theory_is_found_whatever_type_a_csv_gave_a_boolean_setting():
    """theory.csv reads `residual` as booleans; comparisons.csv, whose baseline and treatment
    columns mix a factor's levels (True beside 'xavier' when init is a factor too), reads them as
    text: a row's settings find their prediction either way, and not the other arm's."""
    from vanishing.report.predictions import lookup

    theory = pd.DataFrame({"residual": [False, True], "depth": [64, 64],
                           "predicted_log10_ratio": [-37.0, 0.25]})  # fmt: skip
    for plain, skip in ((False, True), ("False", "True"), (np.False_, np.True_)):
        assert lookup(theory, {"residual": plain, "depth": 64.0})["predicted_log10_ratio"] == -37.0
        assert lookup(theory, {"residual": skip, "depth": "64"})["predicted_log10_ratio"] == 0.25
    assert lookup(theory, {"residual": "False", "depth": 32}) is None


@pytest.mark.parametrize(("diff", "p", "expected"), [
    (-0.2, SIG, SUPPORTED), (0.2, SIG, CONTRADICTED), (-0.2, NS, INCONCLUSIVE)])  # fmt: skip
def test_stuck_units_decide_6c_either_way(diff, p, expected):
    """6(c) on one measure: relu's stuck_final minus sigmoid's/tanh's, significantly below 0
    holds, above 0 is contrary, not significant is null; the gradient parts stay supported, so
    the claim is supported only when 6(c) is too. Tables without the stuck probe leave 6(c) not
    tested (and the claim qualified), rather than silently dropped."""
    t = world_6(1)
    stuck = t["comparisons"]["metric"] == "stuck_final"
    t["comparisons"].loc[stuck, ["diff", "p_welch", "p_perm", "p_holm"]] = [diff, p, p, p]
    fields = judge(SPEC[6])(t, SPEC[6].grids, ())
    parts = dict(fields["parts"])
    for b in SATURATING:
        assert parts[f"(c) stuck units in training, vs {b}"] == expected
        assert parts[f"(a) own init, vs {b}"] == SUPPORTED
    assert fields["verdict"] == (SUPPORTED if expected == SUPPORTED else QUALIFIED)
    assert any("stuck_final" in e and "outside theory" in e for e in fields["evidence"])
    t["comparisons"] = t["comparisons"][~stuck]
    fields = judge(SPEC[6])(t, SPEC[6].grids, ())
    assert dict(fields["parts"])["(c) stuck units in training, vs tanh"] == NOT_TESTED
    assert fields["verdict"] == QUALIFIED


def test_matched_chi_rows_join_claims_4_and_6_where_the_sub_grid_exists():
    """At matched chi relu vs sigmoid/tanh comes out either way with the data."""
    for d, expected in ((1, SUPPORTED), (-1, CONTRADICTED)):
        rows = [
            comparison(
                f"activation_vs_{b}",
                m,
                b,
                "relu",
                sign * d,
                p_of(d),
                "matched_chi",
                depth=16,
                sigma_w2="critical",
                **PLAIN,
            )
            for b in SATURATING
            for m, sign in (("log10_grad_ratio_init", 1), ("abs_log10_grad_ratio_init", -1))
        ]
        t = tables(comparisons=rows)
        for number, label in ((4, "(a) matched chi, vs sigmoid"), (6, "(b) matched chi, vs tanh")):
            parts = dict(judge(SPEC[number])(t, SPEC[number].grids, ())["parts"])
            assert parts[label] == expected, (number, d)
    assert "(b) matched chi, vs tanh" not in dict(judge(SPEC[6])(world_6(1), SPEC[6].grids,
                                                                  ())["parts"])  # fmt: skip


@pytest.mark.parametrize(("lnsgd_trains", "c_top", "expected"), [
    (True, 0.5, SUPPORTED), (False, 0.999, CONTRADICTED), (False, 0.5, INCONCLUSIVE)])  # fmt: skip
def test_the_cause_of_stagnation_is_gradient_size_or_forward_collapse(lnsgd_trains, c_top,
                                                                      expected):  # fmt: skip
    """Deep plain sigmoid under SGD, Adam (eps 1e-8 and 1e-12) and layer-wise normalised SGD:
    if rescaling each gradient trains it the gradient's size was the cause (3(e) holds); if
    nothing trains while the top layer's c at init is near 1 the forward pass was."""
    sel = []
    for opt, eps in (("sgd", np.nan), ("adam", 1e-8), ("adam", 1e-12), ("lnsgd", np.nan)):
        low, high = (0.6, 0.8) if opt == "lnsgd" and lnsgd_trains else (0.08, 0.12)
        sel.append(selected("sigmoid", 32, "optimizers", final_test_accuracy_ci_low=low,
                            final_test_accuracy_ci_high=high, forward_c_top_init_mean=c_top,
                            adam_eps=eps, settings=dict(optimizer=opt, **PLAIN)))  # fmt: skip
    fields = judge(SPEC[3])(tables(selected=sel), SPEC[3].grids, ())
    assert dict(fields["parts"])["(e) cause"] == expected
    assert "(e) cause" not in dict(judge(SPEC[3])(world_3(1), SPEC[3].grids, ())["parts"])
