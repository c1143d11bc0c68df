"""A verdict's data flip with the data, end to end through the real Snakefile: tanh nets at
step 0 (epochs 0, cheap) on both sides of criticality. PyTorch's default init (sigma_w2 = 1/3,
chi* = 1/3) must decay exponentially, Xavier's (sigma_w2 = 1, the critical point) as a power
law; claim 1's rows flip with the init (exponential holds at PyTorch's init, not at Xavier's),
each beside theory's prediction, and since theory decides both rows before the data the claim
is foregone."""

from __future__ import annotations

import pytest
from study import snakemake, write_config

from vanishing.report.evidence import AS_PREDICTED, FOREGONE, HOLDS, MARK
from vanishing.report.findings import evaluate

pytestmark = pytest.mark.e2e

FLIP = {
    "study": "tiny-flip",
    "seeds": [0, 1, 2, 3, 4],
    "train": {"lr": [0.1], "probe_size": 64},
    "grids": {
        "profile": {"activation": ["tanh"], "depth": [2, 4, 8, 16, 32, 64, 128],
                    "norm": ["none"], "residual": [False], "init": ["pytorch", "xavier"],
                    "epochs": [0]},
        # one tiny trained cell: the figures of a study need something trained to draw
        "main": {"activation": ["relu"], "depth": [2], "norm": ["none"], "residual": [False],
                 "epochs": [1], "seeds": [0, 1]},
    },
    "pack": ["depth", "norm", "init", "optimizer", "epochs"],
}  # fmt: skip


@pytest.fixture(scope="module")
def claims(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("flip")
    write_config(workdir, FLIP)
    snakemake(workdir)
    return {c.number: c for c in evaluate(workdir / "results" / "tables")}


def test_claim_1_flips_with_the_init_as_theory_predicts(claims):
    c = claims[1]
    rows = {init: next(e for e in c.evidence if f"tanh ({init} init)" in e)
            for init in ("pytorch", "xavier")}  # fmt: skip
    assert ": exponential " + MARK[HOLDS] in rows["pytorch"], rows["pytorch"]
    assert "chi* gives exponential" in rows["pytorch"] and f"*{AS_PREDICTED}*" in rows["pytorch"]
    # at the critical point the J tests keep no exponential: a power law or neither (at width
    # 64 and depth <= 128 the data may depart from the pure power law the wide limit gives)
    assert MARK[HOLDS] not in rows["xavier"] and "chi* gives power law" in rows["xavier"]
    assert c.verdict == FOREGONE and c.data.startswith("1 of 2 rows hold")
