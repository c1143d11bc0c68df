"""Claim 3's degradation part on synthetic tables: it comes out each way (degradation with
balanced gradients, poor learning with vanishing gradients, no gap), says that poor learning
is not the gradients' doing only where it is, and leaves claim 3 as it was without conv nets."""

from __future__ import annotations

import pandas as pd
import pytest
from claim_tables import NS, SIG, comparison, selected, tables
from test_findings import world_3

from vanishing.report import claims_conv
from vanishing.report.evidence import CONTRADICTED, INCONCLUSIVE, QUALIFIED, SUPPORTED
from vanishing.report.registry import CLAIMS
from vanishing.report.registry import judge as judge_of

SPEC = {c.number: c for c in CLAIMS}[3]
KEYS = ("arch", "activation", "depth", "norm", "residual")
CONV = dict(arch="cnn", norm="batch", residual=False)


def conv_rows(diff: float, p: float, init: float, final: float, spread: float = 0.2) -> dict:
    """One deepest-vs-shallowest comparison (depth 8 vs 56) and the deeper cell's gradient
    balance (log10 layer-1/top means at init and at the end, +- spread)."""
    comp = comparison("deepest_vs_shallowest", "final_train_loss", 8, 56, diff, p, "conv",
                      activation="relu", **CONV)  # fmt: skip
    sel = selected("relu", 56, "conv", settings={**CONV, "epochs": 3},
                   log10_grad_ratio_init_mean=init, log10_grad_ratio_init_ci_low=init - spread,
                   log10_grad_ratio_init_ci_high=init + spread, log10_grad_ratio_final_mean=final,
                   log10_grad_ratio_final_ci_low=final - spread,
                   log10_grad_ratio_final_ci_high=final + spread)  # fmt: skip
    comp["epochs"] = 3.0  # as comparisons.csv spells a number its selected row spells 3
    return {"comparisons": [comp], "selected": [sel]}


def judge(t: dict) -> dict:
    return judge_of(SPEC)(t, SPEC.grids, KEYS)


@pytest.mark.parametrize(
    "diff, p, init, final, expected",
    [
        (0.8, SIG, 0.3, 0.4, CONTRADICTED),  # degradation: worse, gradients within a decade
        (0.8, SIG, 0.3, -2.5, SUPPORTED),  # worse, and the gradient vanished by the end
        (0.8, SIG, 3.0, 0.2, CONTRADICTED),  # worse, but exploding toward the input: not vanishing
        (0.8, SIG, float("-inf"), 0.2, SUPPORTED),  # worse, underflow at init
        (0.8, NS, 0.3, 0.4, INCONCLUSIVE),  # no significant loss gap
        (-0.8, SIG, 0.3, 0.4, INCONCLUSIVE),  # the deeper net trains better: nothing to explain
        (0.8, SIG, 0.9, 0.5, INCONCLUSIVE),  # balance unclear: the interval reaches a decade
    ],
)
def test_degradation_part_comes_out_each_way(diff, p, init, final, expected):
    t = tables(**conv_rows(diff, p, init, final))
    fields = judge(t)
    assert dict(fields["parts"])[claims_conv.LABEL] == expected
    said = claims_conv.DEGRADED in fields["decisive"]
    assert said == (expected == CONTRADICTED)


def test_the_deeper_cell_is_matched_by_its_settings():
    rows = conv_rows(0.8, SIG, 0.3, 0.4)
    other = selected(
        "relu",
        56,
        "conv",
        settings={**CONV, "width": 99, "epochs": 3},
        log10_grad_ratio_init_mean=-5.0,
        log10_grad_ratio_final_mean=-5.0,
    )
    t = tables(comparisons=rows["comparisons"], selected=[other, *rows["selected"]])
    assert dict(judge(t)["parts"])[claims_conv.LABEL] == CONTRADICTED
    t = tables(comparisons=rows["comparisons"], selected=[other])
    assert dict(judge(t)["parts"])[claims_conv.LABEL] == INCONCLUSIVE  # no row: unclear


def test_claim_3_with_and_without_conv_nets():
    mlp = world_3(1)
    assert judge(mlp)["verdict"] == SUPPORTED
    assert claims_conv.LABEL not in dict(judge(mlp)["parts"])  # no conv nets: as before
    conv = conv_rows(0.8, SIG, 0.3, 0.4)
    both = dict(mlp)
    for name, extra in conv.items():
        both[name] = pd.concat([mlp[name], pd.DataFrame(extra)], ignore_index=True)
    fields = judge(both)
    assert fields["verdict"] == QUALIFIED  # (a)-(d) hold on the MLPs, (e) degrades
    assert any(claims_conv.DEGRADED in line for line in [fields["decisive"]])


def test_partial_degradation_is_said_as_partial():
    a = conv_rows(0.8, SIG, 0.3, 0.4)
    b = conv_rows(0.8, SIG, 0.3, -3.0)  # vanishing at the end
    b["comparisons"][0]["width"] = b["selected"][0]["width"] = 32
    t = tables(comparisons=a["comparisons"] + b["comparisons"],
               selected=a["selected"] + b["selected"])  # fmt: skip
    fields = judge(t)
    assert dict(fields["parts"])[claims_conv.LABEL] == QUALIFIED
    assert "degradation in 1 of 2 groups" in fields["decisive"]
