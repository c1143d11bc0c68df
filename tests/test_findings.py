"""FINDINGS.md on synthetic studies built so that each verdict comes out each way."""

from __future__ import annotations

from itertools import product

import numpy as np
import pandas as pd
import pytest
from synthetic import CELL_SETTINGS, SATURATING, make_runs

from vanishing.analysis.tables import write_tables
from vanishing.report.evidence import combine, tally
from vanishing.report.findings import evaluate, write_findings


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
                             "grad_weight_norm": rms, "saturation": 0.0})  # fmt: skip
    return pd.DataFrame(rows)


def world(effects=True, tanh_slope=-0.5, bn_init=0.0, res_init=0.0, depths=(2, 8), seeds=range(4)):
    """A study where (with ``effects``) saturating plain nets lose 10**0.5 of gradient per
    layer and deep ones do not train, relu loses 10**0.1, and batch norm or skips fix both;
    ``bn_init`` and ``res_init`` make gradients grow toward the input by that much per layer
    at init in plain batch-norm nets and in residual nets without a norm."""
    rng = np.random.default_rng(1)
    rows, finals = [], []
    grid = product(("sigmoid", "tanh", "relu"), depths, ("none", "batch"), (False, True), seeds)
    for a, d, norm, res, s in grid:
        slope = {"sigmoid": -0.5, "tanh": tanh_slope, "relu": -0.1}[a]
        plain = norm == "none" and not res
        log_ratio = slope * d if plain and effects else 0.0
        if norm == "batch" and not res:
            log_ratio = bn_init * d
        if norm == "none" and res:
            log_ratio = res_init * d
        acc = 0.95
        if plain and effects:
            acc = 0.2 if a in SATURATING and d >= 8 else 0.8
        acc += rng.normal(0, 0.01)
        ratio = 10 ** (log_ratio + rng.normal(0, 0.05))
        rows.append(dict(activation=a, depth=d, norm=norm, residual=res, seed=s))
        rows[-1].update(grad_ratio_init=ratio, final_val_accuracy=acc, final_test_accuracy=acc)
        final = slope * d if plain and effects else 0.0
        finals.append(final + rng.normal(0, 0.05))
    runs = make_runs(rows)
    return runs, make_layers(runs, np.array(finals))


def theory_table(measured, predicted, ci=0.02):
    rows = [dict(activation=a, init_scheme="xavier", norm="none", residual=False, depth=d,
                 width=16, data="digits", n_seeds=5, predicted_slope=predicted,
                 measured_slope=measured, measured_slope_ci_low=measured - ci,
                 measured_slope_ci_high=measured + ci,
                 relative_error=(measured - predicted) / abs(predicted), theory="mean-field")
            for a in SATURATING for d in (8, 16)]  # fmt: skip
    return pd.DataFrame(rows)


def judge(tmp_path, runs, layers, theory=None):
    write_tables(runs, layers, tmp_path / "tables")
    if theory is not None:  # the theory table of this synthetic world, as stats would write it
        theory.to_csv(tmp_path / "tables" / "theory.csv", index=False)
    claims = write_findings(tmp_path / "tables", tmp_path / "FINDINGS.md")
    return {c.number: c.verdict for c in claims}, (tmp_path / "FINDINGS.md").read_text()


@pytest.fixture(scope="module")
def supported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("supported")
    return judge(tmp, *world(), theory=theory_table(-0.5, -0.45))


def test_every_claim_supported_in_the_textbook_world(supported):
    verdicts, text = supported
    assert verdicts == {i: "supported" for i in range(1, 7)}
    assert "Rule:" in text and text.count("**Verdict: supported.**") == 6
    assert "slope -0.5" in text  # claim 1 evidence carries the fitted slope
    assert "relu with kaiming vs sigmoid with xavier" in text


def test_nothing_supported_in_a_null_world(tmp_path):
    verdicts, text = judge(tmp_path, *world(effects=False), theory=theory_table(-0.5, -0.2))
    assert verdicts[1] == verdicts[2] == verdicts[3] == verdicts[6] == "not supported"
    assert verdicts[5] == "not supported"  # skips change nothing when nothing is wrong
    assert verdicts[4] == "not supported"
    assert "[fails]" in text and "[holds]" not in text


def test_partial_evidence_is_qualified(tmp_path):
    verdicts, text = judge(
        tmp_path, *world(tanh_slope=0.0, bn_init=0.6), theory=theory_table(-0.5, -0.3, ci=0.3)
    )
    assert verdicts[1] == "qualified"  # sigmoid decays, tanh does not
    assert verdicts[4] == "qualified"  # batch norm trains but its gradients explode at init
    assert "gradients grow toward the input with batch norm" in text
    assert verdicts[6] == "supported"  # predicted inside the wide measured interval


def test_exploding_skips_do_not_count_as_better_gradient_flow(tmp_path):
    """Residual nets that train but whose gradient grows 10**0.6 per layer toward the input:
    farther from balanced flow than the plain nets, so part (a) of claim 5 fails."""
    verdicts, text = judge(tmp_path, *world(res_init=0.6))
    assert verdicts[5] == "qualified"
    assert "(a) at init: not supported." in text and "(b) accuracy: supported." in text
    assert "gradients grow toward the input with residual connections: relu, depth 8" in text


def test_missing_cells_are_not_tested(tmp_path):
    verdicts, text = judge(tmp_path, *world(depths=(2, 4), seeds=range(3)))
    assert [verdicts[i] for i in (2, 3, 4, 5, 6)] == ["not tested"] * 5
    assert verdicts[1] == "supported"
    assert "Reason: no theory table" in text
    empty = evaluate(tmp_path / "nowhere")
    assert all(c.verdict == "not tested" for c in empty)


def test_tally_and_combine_rules():
    assert tally([]) == "not tested" and tally([True, True]) == "supported"
    assert tally([False]) == "not supported" and tally([True, False]) == "qualified"
    assert combine(["supported", "not tested"]) == "qualified"
    assert combine(["not supported", "not tested"]) == "not supported"
    assert combine(["not tested", "not tested"]) == "not tested"
    assert combine(["supported", "supported"]) == "supported"


def test_verdict_table_for_the_report_front_page():
    """The reStructuredText verdict table renders as a table with one row per claim (no stray
    enumerated lists, no docutils warnings), each with its verdict and, untested, its reason."""
    from docutils.core import publish_parts

    from vanishing.report.evidence import Claim, render_verdicts_rst

    claims = [
        Claim(1, "Gradients *shrink* with depth_", "r", "supported"),
        Claim(2, "Deep nets | train", "r", "not tested", reason="no `tanh` cells"),
    ]
    html = publish_parts(render_verdicts_rst(claims), writer="html",
                         settings_overrides={"report_level": 1})["html_body"]  # fmt: skip
    assert html.count("<tr>") == 3 and "system-message" not in html and "<ol" not in html
    assert "1. Gradients *shrink* with depth_" in html and "<strong>supported</strong>" in html
    assert "<strong>not tested</strong> (no `tanh` cells)" in html
