"""Conv nets through the real Snakefile on a tiny study: every probe per conv layer reaches the
tables (the classifier as layer depth, without a saturation), theory.csv predicts the plain conv
nets, MLflow holds their runs, and FINDINGS judges the degradation part of claim 3 and claims 9
and 10 on the conv nets beside a few MLPs (the ``main`` sub-grid)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from study import snakemake

from vanishing.report.findings import evaluate

pytestmark = pytest.mark.e2e

CONV = {
    "study": "tiny-conv",
    "seeds": [0, 1],
    "train": {"lr": [0.03], "epochs": 1, "probe_every": 10, "probe_size": 32},
    "grids": {
        "conv": {"arch": ["cnn"], "activation": ["relu"], "depth": [8, 20],
                 "norm": ["none", "batch"], "residual": [False, True], "block": ["post"],
                 "width": [4]},
        "main": {"activation": ["relu"], "depth": [8], "norm": ["none", "batch"],
                 "residual": [False], "width": [16]},  # MLPs beside them (claims 9 and 10)
    },
    "pack": ["depth", "norm", "residual", "block", "width"],  # two jobs: the conv nets, the MLPs
}  # fmt: skip


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    work = tmp_path_factory.mktemp("conv")
    (work / "tiny.yaml").write_text(yaml.safe_dump(CONV))
    snakemake(work, "--cores", "2", "--workflow-profile", "none", "--force-use-threads",
              timeout=1200)  # fmt: skip
    return work / "results"


def test_conv_probes_reach_the_tables(results):
    runs = pd.read_csv(results / "tables" / "runs.csv")
    assert len(runs) == 8 * 2 + 2 * 2 and (runs["arch"] == "cnn").sum() == 8 * 2
    runs = runs[runs["arch"] == "cnn"]
    assert set(runs["depth"]) == {8, 20}
    layers = pd.read_csv(results / "tables" / "layer_gradients.csv")
    layers = layers[layers["arch"] == "cnn"]
    at0 = layers[layers["step"] == 0]
    per_run = at0.groupby(["cell", "seed"])["layer"].agg(["min", "max", "count"])
    depth = runs.groupby(["cell", "seed"])["depth"].first()
    assert (per_run["min"] == 1).all() and (per_run["max"] == depth.loc[per_run.index]).all()
    assert (per_run["count"] == per_run["max"]).all()
    top = at0["layer"] == at0["depth"]
    assert at0.loc[top, "saturation"].isna().all()  # the classifier: no activation
    assert at0.loc[~top, "saturation"].between(0, 1).all()
    assert (at0["grad_preact_rms"] > 0).all() and (at0["weight_unchanged"] == 1).all()
    last = layers[layers["step"] == layers["step"].max()]
    assert (last["weight_distance_rel"] > 0).all()  # every conv layer and the classifier moved


def test_theory_predicts_the_plain_conv_nets(results):
    theory = pd.read_csv(results / "tables" / "theory.csv")
    theory = theory[(theory["arch"] == "cnn") & (theory["norm"] == "batch")]
    plain = theory[~theory["residual"].astype(bool)]
    residual = theory[theory["residual"].astype(bool)]
    # batch norm, relu: -0.5 log10(pi / (pi - 1)) per conv layer (Yang et al. 2019)
    np.testing.assert_allclose(plain["predicted_slope"], -0.5 * np.log10(np.pi / (np.pi - 1)))
    assert residual["predicted_slope"].isna().all()


def test_findings_judge_degradation(results):
    text = (results / "FINDINGS.md").read_text()
    assert "(f) degradation, plain conv nets with batch norm" in text
    assert "final_train_loss, depth 20 - 8" in text


def test_findings_judge_claims_9_and_10_on_conv_nets(results):
    """Claim 9: the MLP parts on ``main`` (one row each: relu, depth 8), the conv parts on
    ``conv`` (depths 8 and 20, plain), and the sentence on whether they agree, which follows
    from the parts' verdicts; claim 10: conv nets of 20 layers only (without a norm and with
    batch norm), and no MLPs of 64+ layers to compare them with."""
    claims = {c.number: c for c in evaluate(results / "tables")}
    nine, ten = claims[9], claims[10]
    labels = [label for label, _ in nine.parts]
    assert labels == ["(a) at init", "(b) early in training", "(c) after training",
                      "(d) conv nets, at init", "(e) conv nets, early in training",
                      "(f) conv nets, after training"]  # fmt: skip
    rows = {label: [e for e in nine.evidence if e.startswith(label + " abs_")] for label in labels}
    assert all(len(rows[label]) == 1 and "arch=mlp" in rows[label][0] for label in labels[:3])
    for label in labels[3:]:
        assert [("depth=8" in e, "depth=20" in e, "arch=cnn" in e) for e in rows[label]] == [
            (True, False, True), (False, True, True)]  # fmt: skip
    verdicts = [v for _, v in nine.parts]
    agree = verdicts[:3] == verdicts[3:]
    assert ("MLPs and conv nets agree" in nine.decisive) == agree
    assert ("MLPs and conv nets differ" in nine.decisive) == (not agree)
    assert nine.grids == "main and conv"
    conv = [e for e in ten.evidence if e.startswith("(c) conv nets, flow at init abs_")]
    assert len(conv) == 2 and all("depth=20" in e for e in conv)
    assert "MLPs not tested, conv nets" in ten.decisive and "nothing to compare" in ten.decisive
    text = (results / "FINDINGS.md").read_text()
    assert "(d) conv nets, at init: " in text and "(d) conv nets, learning: " in text


def test_mlflow_holds_the_conv_runs(results):
    import sqlite3

    with sqlite3.connect(results / "mlflow.db") as db:
        (n,) = db.execute(
            "SELECT COUNT(DISTINCT run_uuid) FROM params WHERE key = 'arch' AND value = 'cnn'"
        ).fetchone()
        (probes,) = db.execute(
            "SELECT COUNT(DISTINCT run_uuid) FROM metrics WHERE key LIKE 'log10_grad_preact_rms/%'"
        ).fetchone()
    assert n >= 8 and probes >= 8  # every replica run, with its per-layer gradients
