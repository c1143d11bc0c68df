"""Claims 9 (batch norm) and 10 (residual connections) judged on conv nets too, on synthetic
tables: each conv part comes out each way, the decisive text says whether MLPs and conv nets
agree, the MLP parts' rows are what they were (the conv rows are Holm-adjusted apart), and a
study without conv nets is judged as before."""

from __future__ import annotations

from itertools import product

import pandas as pd
import pytest
from claim_tables import NS, SIG, comparison, tables, theory
from test_findings import world_9, world_10

from vanishing.report.evidence import CONTRADICTED, FOREGONE, INCONCLUSIVE, SUPPORTED
from vanishing.report.registry import BY_NUMBER
from vanishing.report.registry import judge as judge_of

KEYS = ("arch", "activation", "depth", "norm", "residual")
CONV = dict(arch="cnn", activation="relu", block="post")
EXPECTED = {1: SUPPORTED, -1: CONTRADICTED, 0: INCONCLUSIVE}
CONV_LABELS = {
    9: ("(d) conv nets, at init", "(e) conv nets, early in training",
        "(f) conv nets, after training"),
    10: ("(c) conv nets, flow at init", "(d) conv nets, learning"),
}  # fmt: skip
MLP_LABELS = {9: ("(a) at init", "(b) early in training", "(c) after training"),
              10: ("(a) flow at init", "(b) learning")}  # fmt: skip


def conv_9(d: int, depths=(8, 56), p=None) -> list[dict]:
    """Conv nets with batch norm against none: distance from balanced flow falls by d decades
    (d = 1: the claim holds; -1: it grows; 0: no significant change)."""
    metrics = ("abs_log10_grad_ratio_init", "abs_log10_grad_ratio_early",
               "abs_log10_grad_ratio_final")  # fmt: skip
    return [comparison("norm_vs_none", m, "none", "batch", -1.0 * d, p or (SIG if d else NS),
                       "conv", depth=depth, residual=False, **CONV)
            for m, depth in product(metrics, depths)]  # fmt: skip


def conv_10(d: int, depths=(20, 56)) -> list[dict]:
    """Residual conv nets against plain ones, without a norm and with batch norm: closer to
    balanced flow at init and more accurate (d = 1), the other way (-1) or no difference (0)."""
    return [comparison("residual_vs_plain", m, False, True, sign * d, SIG if d else NS, "conv",
                       depth=depth, norm=n, residual_scale="inv_sqrt_depth", **CONV)
            for (m, sign), n, depth in product((("abs_log10_grad_ratio_init", -1.0),
                                                ("final_test_accuracy", 0.1)),
                                               ("none", "batch"), depths)]  # fmt: skip


MLP = {9: world_9, 10: world_10}
CONV_ROWS = {9: conv_9, 10: conv_10}


def judge(number: int, t: dict) -> dict:
    spec = BY_NUMBER[number]
    return judge_of(spec)(t, spec.grids, KEYS)


def with_conv(t: dict, rows: list[dict]) -> dict:
    return {**t, "comparisons": pd.concat([t["comparisons"], pd.DataFrame(rows)],
                                          ignore_index=True)}  # fmt: skip


@pytest.mark.parametrize("number", [9, 10])
@pytest.mark.parametrize("direction", [1, -1, 0])
def test_each_conv_part_comes_out_each_way(number, direction):
    fields = judge(number, with_conv(MLP[number](1), CONV_ROWS[number](direction)))
    parts = dict(fields["parts"])
    assert [parts[label] for label in CONV_LABELS[number]] == [EXPECTED[direction]] * len(
        CONV_LABELS[number]
    )
    assert [parts[label] for label in MLP_LABELS[number]] == [SUPPORTED] * len(MLP_LABELS[number])
    assert "conv" in fields["grids"].split(" and ")


@pytest.mark.parametrize("number", [9, 10])
@pytest.mark.parametrize(
    "mlp, conv, sentence, verdict",
    [
        (1, 1, "MLPs and conv nets agree: the claim holds on both", SUPPORTED),
        (-1, -1, "MLPs and conv nets agree: the claim fails on both", CONTRADICTED),
        (0, 0, "MLPs and conv nets agree: inconclusive on both", INCONCLUSIVE),
        (1, -1, "MLPs and conv nets differ: MLPs supported, conv nets contradicted", "qualified"),
        (-1, 1, "MLPs and conv nets differ: MLPs contradicted, conv nets supported", "qualified"),
        (1, 0, "MLPs and conv nets differ: MLPs supported, conv nets inconclusive", "qualified"),
    ],
)
def test_the_decisive_text_says_whether_mlps_and_conv_nets_agree(number, mlp, conv, sentence,
                                                                 verdict):  # fmt: skip
    fields = judge(number, with_conv(MLP[number](mlp), CONV_ROWS[number](conv)))
    said = fields["decisive"].split("; conv nets", 1)[1]  # after the MLPs' and conv nets' numbers
    assert said.split("; ", 1)[1].startswith(sentence)
    assert fields["verdict"] == verdict  # the claim is judged on both
    if mlp != conv:  # each rule whose verdict differs is named
        a, b = (EXPECTED[d] for d in (mlp, conv))
        rules = [label.split(") ")[1] for label in MLP_LABELS[number]]
        assert fields["decisive"].endswith(
            "(" + "; ".join(f"{r}: MLPs {a}, conv nets {b}" for r in rules) + ")"
        )


def test_the_same_overall_verdict_with_different_rules_is_no_agreement():
    """MLPs: batch norm moves the gradient away from balance at init, no change later
    (contradicted, inconclusive, inconclusive: qualified); conv nets: closer at init, and later
    only at depth 56 (supported, qualified, qualified: qualified). Both are qualified overall,
    but the rules disagree: the text says they differ, and where."""
    mlp = [comparison("norm_vs_none", m, "none", "batch", diff, p, activation="relu", depth=16,
                      residual=False)
           for m, diff, p in (("abs_log10_grad_ratio_init", 1.0, SIG),
                              ("abs_log10_grad_ratio_early", 0.0, NS),
                              ("abs_log10_grad_ratio_final", 0.0, NS))]  # fmt: skip
    conv = [r for r in conv_9(1) if r["metric"] == "abs_log10_grad_ratio_init" or r["depth"] == 56]
    conv += [r for r in conv_9(0) if r["metric"] != "abs_log10_grad_ratio_init" and r["depth"] == 8]
    fields = judge(9, tables(comparisons=mlp + conv))
    assert fields["decisive"].endswith(
        "MLPs and conv nets differ: MLPs qualified, conv nets qualified (at init: MLPs "
        "contradicted, conv nets supported; early in training: MLPs inconclusive, conv nets "
        "qualified; after training: MLPs inconclusive, conv nets qualified)"
    )


def test_the_conv_nets_deciding_number_is_in_the_decisive_text():
    said = judge(9, with_conv(world_9(1), conv_9(1)))["decisive"]
    # at init, the deepest conv row: batch norm 1 - 1 = 0 decades, none 1 decade
    assert "conv nets, relu depth 56 at init: 0 decades with batch norm vs 1 without" in said
    said = judge(10, with_conv(world_10(1), conv_10(1)))["decisive"]
    # test accuracy with batch norm at depth 56: 1 + 0.1 residual vs 1 plain
    assert "conv nets with batch norm, depth 56: test accuracy 1.1 residual vs 1 plain" in said


@pytest.mark.parametrize("number", [9, 10])
def test_the_mlp_parts_rows_do_not_change(number):
    """The MLP parts' verdicts and every line of their evidence are the same with conv rows as
    without; the conv rows' p-values are Holm-adjusted over the conv rows alone (with one
    family the MLP rows' Holm p would double: 0.006 against 0.012 for 6 rows of p 0.001)."""
    alone = judge(number, MLP[number](1))
    both = judge(number, with_conv(MLP[number](1), CONV_ROWS[number](-1)))
    assert both["parts"][: len(alone["parts"])] == alone["parts"]
    assert both["evidence"][: len(alone["evidence"])] == alone["evidence"]
    n = len(MLP[number](1)["comparisons"])
    assert f"Holm p = {SIG * n:.2g}" in alone["evidence"][1]  # Holm over the MLP rows only
    conv_lines = [e for e in both["evidence"] if e.startswith(CONV_LABELS[number][0] + " ")]
    m = len(CONV_ROWS[number](-1))
    assert conv_lines and all(f"Holm p = {SIG * m:.2g}" in e for e in conv_lines)


@pytest.mark.parametrize("number", [9, 10])
@pytest.mark.parametrize("direction", [1, -1, 0])
def test_a_study_without_conv_nets_is_judged_as_before(number, direction):
    fields = judge(number, MLP[number](direction))
    assert [label for label, _ in fields["parts"]] == list(MLP_LABELS[number])
    assert fields["verdict"] == EXPECTED[direction]
    assert "conv" not in fields["decisive"] and "conv" not in fields["grids"]
    if number == 9:  # the MLP text as before: batch norm 1 - d decades from balance, none 1
        assert fields["decisive"] == (f"relu depth 16 at init: {1 - direction:g} decades from "
                                      "balanced flow with batch norm vs 1 without")  # fmt: skip
    else:  # the first deepest row without a norm: sigmoid, accuracy 1 + 0.5 d against 1
        assert fields["decisive"] == (f"sigmoid depth 64: test accuracy {1 + 0.5 * direction:g} "
                                      "residual vs 1 plain")  # fmt: skip


def test_claim_10_judges_conv_nets_of_20_layers_or_more_only():
    shallow = judge(10, with_conv(world_10(1), conv_10(-1, depths=(8,))))
    assert shallow == judge(10, world_10(1))  # 8 conv layers are not very deep: as before
    deep = judge(10, with_conv(world_10(1), conv_10(-1, depths=(8, 20))))
    table = dict(deep["parts"])
    assert table["(c) conv nets, flow at init"] == CONTRADICTED
    lines = [e for e in deep["evidence"] if e.startswith("(c) conv nets, flow at init abs_")]
    assert len(lines) == 2 and all("depth=20" in e for e in lines)  # norm none and batch, 20


def test_a_conv_only_study_judges_its_conv_rows_once():
    """Without the claim's own sub-grid (``main``) the MLP parts fall back to the conv grid:
    its rows are judged there, not a second time as the conv part."""
    fields = judge(9, tables(comparisons=conv_9(1)))
    assert [label for label, _ in fields["parts"]] == list(MLP_LABELS[9])
    assert "conv nets" not in fields["decisive"]


def test_theory_beside_the_conv_rows_is_the_conv_grids():
    """At init theory predicts each conv arm's ratio from the conv grid's theory.csv rows: batch
    norm's growth toward the input (Yang et al. 2019: 0.5 log10(pi / (pi - 1)) = 0.083 decades
    per layer, 4.6 over 55 layers) against He init's balance, so batch norm is predicted 4.6
    decades further from balanced flow: theory decides the row (the part is foregone), the
    trained parts stay open."""
    grow = 55 * 0.5 * 0.16649  # log10(pi / (pi - 1)) = 0.16649
    rows = [theory("relu", 56, 0.083 if n == "batch" else 0.0, 0.0, "conv", norm=n,
                   residual=False, init_scheme=s, arch="cnn", block="post")
            for n, s in (("batch", "kaiming"), ("none", "xavier"))]  # fmt: skip
    for r, ratio in zip(rows, (grow, 0.0), strict=True):
        r["predicted_log10_ratio"] = ratio
    t = with_conv(world_9(1), conv_9(-1, depths=(56,)))
    fields = judge(9, {**t, "theory": pd.DataFrame(rows)})
    parts = dict(fields["parts"])
    assert parts["(d) conv nets, at init"] == FOREGONE
    assert parts["(e) conv nets, early in training"] == CONTRADICTED  # trained: open
    line = next(e for e in fields["evidence"] if e.startswith("(d) conv nets, at init abs_"))
    assert "log10 ratio 4.58 (grows toward the input: explodes) vs 0" in line
    assert line.endswith("*as theory predicts* (theory decides this row).")
    assert (
        "MLPs and conv nets differ: MLPs supported, conv nets contradicted ("
        in (fields["decisive"])
    )
