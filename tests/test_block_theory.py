"""Mean-field maps of the residual blocks (analysis/blocks.py) by hand and against the step-0
profiles of real batched nets (several seeds), and claim 11's line naming the block."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vanishing.analysis import blocks, theory
from vanishing.config import ModelConfig
from vanishing.training.models import BatchedMLP
from vanishing.training.probes import measure

SEEDS, WIDTH, INPUT_DIM, PROBE = (0, 1, 2, 3), 64, 64, 256


def test_coherent_gain_by_hand():
    """relu with He init (sigma_w2 = 2, q = 2 p): 1 + alpha r / sqrt(pi), r = mu / sqrt(p)
    (issue 17); tanh is odd (E[phi''] = 0): no coherent mode."""
    p, mu, alpha = 1.7, 0.9, 0.25
    got = blocks.coherent_gain("relu", 2.0 * p, mu, 2.0, alpha)
    assert got == pytest.approx(1.0 + alpha * (mu / math.sqrt(p)) / math.sqrt(math.pi), rel=1e-3)
    assert blocks.coherent_gain("tanh", 2.0 * p, mu, 1.0, alpha) == pytest.approx(1.0, abs=1e-12)


def test_pre_maps_first_block_by_hand():
    """relu, no norm, depth 2: block 2's activation reads the stem's output relu(z) alone
    (no increment yet), open for half the units: step = 1 + alpha^2 * 2 * 1/2, own = alpha^2;
    the stem's own is E[relu'(h)^2] = 1/2."""
    alpha = 0.3
    step, own = blocks.pre_maps(
        "relu", "none", np.array([2.0, 2.0]), np.zeros(2), np.array([1.0]), alpha
    )
    assert step[1, 0] == pytest.approx(1.0 + alpha**2, rel=1e-9)
    assert own[1, 0] == pytest.approx(alpha**2) and own[0, 0] == pytest.approx(0.5, abs=1e-2)


def test_example_bins_are_equal_count_means():
    assert blocks.example_bins(np.arange(8.0), 4).tolist() == [0.5, 2.5, 4.5, 6.5]
    assert blocks.example_bins(np.array([3.0, 1.0]), 4).tolist() == [1.0, 3.0]


def measured_slope(block, activation, norm, depth, scale) -> tuple[float, float]:
    """Mean and sd over SEEDS of the least-squares slope of log10 grad_preact_rms at init."""
    cfg = ModelConfig(activation, depth=depth, norm=norm, residual=True, width=WIDTH,
                      block=block, residual_scale=scale)  # fmt: skip
    net = BatchedMLP(cfg, INPUT_DIM, 10, seeds=list(SEEDS))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(len(SEEDS), PROBE, INPUT_DIM, generator=gen)
    y = torch.randint(0, 10, (len(SEEDS), PROBE), generator=gen)
    rms = measure(net, x, y)["grad_preact_rms"].numpy()
    layers = np.arange(1, depth + 1)
    slopes = [theory.fit_slope(layers, np.log10(r)) for r in rms]
    return float(np.mean(slopes)), float(np.std(slopes, ddof=1))


def predicted(block, activation, norm, depth, scale) -> float:
    return theory.predicted_slope(activation, "auto", norm, True, depth, WIDTH, INPUT_DIM, 1.0,
                                  scale, block=block)  # fmt: skip


# predicted / measured (mean of 4 seeds) when written
CENTRED = [
    ("pre", "relu", "none", 64, "inv_sqrt_depth"),  # -0.0054 / -0.0055
    ("pre", "tanh", "none", 64, "inv_sqrt_depth"),  # -0.0029 / -0.0028
    ("pre", "relu", "layer", 64, "inv_sqrt_depth"),  # -0.0046 / -0.0046
    ("pre", "relu", "batch", 64, "inv_sqrt_depth"),  # -0.0046 / -0.0050
    ("post", "relu", "none", 64, "inv_sqrt_depth"),  # -0.0021 / -0.0028
    ("post", "relu", "batch", 64, "inv_sqrt_depth"),  # -0.0065 / -0.0061
    ("post", "sigmoid", "none", 32, "inv_sqrt_depth"),  # +0.6376 / +0.6374
]


@pytest.mark.parametrize("case", CENTRED, ids=["-".join(map(str, c[:4])) for c in CENTRED])
def test_centred_block_slope_matches_real_nets(case):
    """The centred blocks' predicted step-0 slope against real batched nets (4 seeds): within
    0.001 decades per layer plus 15% of the prediction."""
    mean, _ = measured_slope(*case)
    assert mean == pytest.approx(predicted(*case), abs=0.001 + 0.15 * abs(predicted(*case)))


def test_branch_act_slope_needs_the_coherent_mode(monkeypatch):
    """relu, no norm, depth 64, alpha 1/8: with the coherent mode the prediction is within 25%
    of real nets (-0.0146 against -0.0180 when written); the independent-weights form alone
    (the mode switched off) misses by more than a factor 3."""
    case = ("branch_act", "relu", "none", 64, "inv_sqrt_depth")
    mean, _ = measured_slope(*case)
    assert mean == pytest.approx(predicted(*case), rel=0.25)
    monkeypatch.setattr(blocks, "coherent_gain", lambda *a: np.ones_like(np.asarray(a[1])))
    independent = predicted(*case)
    assert abs(mean) > 3 * abs(independent)


def test_skipinit_has_no_profile_and_fixup_is_flat_over_the_blocks():
    """skipinit: alpha = 0, no gradient reaches any h_l of a block at init: no profile. fixup:
    the blocks' weights are 0, so the stream passes unchanged and every block's h_l gets the
    same gradient (alpha = 1)."""
    args = ("relu", "kaiming", "none", True, 16, WIDTH, INPUT_DIM, 1.0)
    assert theory.predicted_profile(*args, "skipinit", block="pre") is None
    prof = theory.predicted_profile(*args, "fixup", block="pre")
    np.testing.assert_allclose(prof[1:], 0.0, atol=1e-12)


def test_theory_labels_name_the_block():
    base = {"norm": "none", "residual": True}
    assert theory.theory_label({**base, "block": "pre"}) == "mean-field+pre"
    assert theory.theory_label({**base, "block": "branch_act"}) == "mean-field+branch_act+coherent"
    assert theory.theory_label({**base, "norm": "batch", "residual": False}) == "batchnorm-yang2019"


def test_claim_11_judges_the_blocks_sub_grid_too():
    """Claim 11 reads its usual sub-grid (profile) and the ``blocks`` one: profile rows that
    hold and a blocks row that misses give a qualified verdict, not a supported one, and the
    evidence names each residual group's block."""
    from claim_tables import tables
    from claim_tables import theory as row

    from vanishing.report.evidence import QUALIFIED, SUPPORTED
    from vanishing.report.registry import CLAIMS, judge

    spec = next(c for c in CLAIMS if c.number == 11)
    keys = ("activation", "depth", "norm", "residual")
    held = [row("relu", 16, 0.6, 0.61, residual=True, block="pre"),
            row("tanh", 16, 0.6, 0.61, residual=False)]  # fmt: skip
    missed = row("relu", 16, 0.6, 0.9, grid="blocks", residual=True, block="branch_act")
    both = judge(spec)(tables(theory=[*held, missed]), spec.grids, keys)
    alone = judge(spec)(tables(theory=held), spec.grids, keys)
    assert alone["verdict"] == SUPPORTED and both["verdict"] == QUALIFIED
    lines = both["evidence"]
    assert any("(branch_act block, residual_scale 1.0)" in ln for ln in lines)
    assert any("(pre block, residual_scale 1.0)" in ln for ln in lines)
