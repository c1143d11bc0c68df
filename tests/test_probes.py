"""Probe values against per-example autograd on plain layers, and saturation and stuck units
by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference import ReferenceMLP

from vanishing.config import ModelConfig
from vanishing.training.models import BatchedMLP, objective
from vanishing.training.optim import make_optimizer
from vanishing.training.probes import (
    forward_moments,
    frobenius,
    is_probe_step,
    measure,
    probe_chunk,
    saturation,
    stuck,
    weight_stats,
)


def two_replicas(cfg, seed):
    """Two replicas of ``cfg`` (seeds 0 and 1) on 4 inputs and 3 classes, a batch of 5 examples
    each from ``seed``, and the probes measured on it."""
    net = BatchedMLP(cfg, 4, 3, seeds=[0, 1])
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 5, 4, generator=gen)
    y = torch.randint(0, 3, (2, 5), generator=gen)
    return net, x, y, measure(net, x, y)


@pytest.mark.parametrize("norm,residual", [("none", False), ("none", True), ("layer", False)])
def test_probe_values_match_per_example_autograd(norm, residual):
    """grad_preact_rms = sqrt(mean_i ||d loss_i / d h_l[i]||^2), one example at a time; and
    grad_weight_norm = ||d mean_i loss_i / d W_l||_F, for each replica independently."""
    cfg = ModelConfig("tanh", depth=3, norm=norm, residual=residual, width=6)
    net, x, y, got = two_replicas(cfg, seed=0)
    for r in range(2):
        ref = ReferenceMLP(net, r)
        sq = torch.zeros(3)
        for i in range(5):
            hs: list[torch.Tensor] = []
            hooks = [
                lin.register_forward_hook(lambda m, inp, out, hs=hs: hs.append(out))
                for lin in ref.linears[:-1]
            ]
            loss = F.cross_entropy(ref(x[r, i : i + 1]), y[r, i : i + 1])
            for h in hooks:
                h.remove()
            grads = torch.autograd.grad(loss, hs)
            sq += torch.stack([g.pow(2).sum() for g in grads])
        torch.testing.assert_close(
            got["grad_preact_rms"][r], (sq / 5).sqrt(), rtol=1e-4, atol=1e-7, check_dtype=False
        )
        loss = F.cross_entropy(ref(x[r]), y[r])
        gw = torch.autograd.grad(loss, [lin.weight for lin in ref.linears[:-1]])
        torch.testing.assert_close(
            got["grad_weight_norm"][r],
            torch.stack([g.norm() for g in gw]),
            rtol=1e-4,
            atol=1e-7,
            check_dtype=False,
        )


def test_batch_norm_probe_uses_batch_statistics_and_leaves_running_stats():
    cfg = ModelConfig("relu", depth=2, norm="batch", residual=False, width=5)
    net = BatchedMLP(cfg, 3, 2, seeds=[0])
    before = net.running_mean_0.clone()
    x, y = torch.randn(1, 8, 3), torch.randint(0, 2, (1, 8))
    got = measure(net, x, y)
    torch.testing.assert_close(net.running_mean_0, before, rtol=0, atol=0)
    # the total derivative through the batch statistics: compare with a summed-loss backward
    ref = ReferenceMLP(net, 0).train()
    hs = []
    for lin in ref.linears[:-1]:
        lin.register_forward_hook(lambda m, inp, out: hs.append(out))
    loss = F.cross_entropy(ref(x[0]), y[0], reduction="sum")
    grads = torch.autograd.grad(loss, hs)
    expected = torch.stack([g.pow(2).sum(1).mean().sqrt() for g in grads])
    torch.testing.assert_close(
        got["grad_preact_rms"][0], expected, rtol=1e-4, atol=1e-7, check_dtype=False
    )


def test_saturation_by_hand():
    a = torch.tensor([[[0.0, 10.0], [-10.0, 0.5]]])  # (R=1, B=2, width=2)
    # sigmoid'(0)=0.25, sigmoid'(10)~4.5e-5, sigmoid'(-10) same, sigmoid'(0.5)=0.235: 2 of 4
    assert saturation("sigmoid", a).item() == pytest.approx(0.5)
    # tanh'(x) < 0.05 for |x| > 2.3: 10 and -10 -> 2 of 4
    assert saturation("tanh", a).item() == pytest.approx(0.5)
    # relu: unit 0 has inputs 0 and -10 (never > 0): dead; unit 1 has 10 and 0.5: alive
    assert saturation("relu", a).item() == pytest.approx(0.5)
    assert saturation("gelu", torch.tensor([[[-1.0, 2.0], [-3.0, -1.0]]])).item() == 0.5


def test_stuck_units_by_hand():
    """A unit is stuck when |phi'| < 1% of its maximum on every example (R=1, B=3, 3 units)."""
    # relu: unit 0 never positive (stuck: dead), unit 1 positive once, unit 2 always
    a = torch.tensor([[[-1.0, -2.0, 0.5], [0.0, 3.0, 1.0], [-5.0, -0.1, 2.0]]])
    assert stuck("relu", a).item() == pytest.approx(1 / 3)
    # sigmoid: stuck beyond |a| = 5.99 (sigmoid' < 0.0025): unit 0 has |a| >= 8 on every example
    # (either sign), unit 1 has one small |a| (0.5: sigmoid' 0.235), unit 2 sits at 6.5, 7, -9
    s = torch.tensor([[[8.0, 9.0, 6.5], [-12.0, 0.5, 7.0], [20.0, -30.0, -9.0]]])
    assert stuck("sigmoid", s).item() == pytest.approx(2 / 3)
    # just inside the level: sigmoid'(5.9) = 0.00271 > 0.0025, so unit 2 is no longer stuck
    s[0, 0, 2] = 5.9
    assert stuck("sigmoid", s).item() == pytest.approx(1 / 3)
    # tanh: stuck beyond |a| = 2.99 (tanh' < 0.01): unit 0 only; saturation (5%: |a| > 2.29)
    # counts 7 of 9 (example, unit) pairs, units 1 and 2 included
    t = torch.tensor([[[3.5, 3.5, -2.5], [-4.0, 10.0, 2.0], [5.0, 0.1, 3.1]]])
    assert stuck("tanh", t).item() == pytest.approx(1 / 3)
    assert saturation("tanh", t).item() == pytest.approx(7 / 9)
    # gelu'(-1.5) = -0.13: a negative slope passes gradient, so only |gelu'| < 0.0113 is stuck
    g = torch.tensor([[[-1.5, -4.0], [-1.5, -5.0]]])
    assert stuck("gelu", g).item() == pytest.approx(0.5)
    # a NaN input is not stuck; replicas are measured apart
    two = torch.stack([a[0], torch.full((3, 3), float("nan"))])
    assert stuck("relu", two).tolist() == pytest.approx([1 / 3, 0.0])


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_a_net_with_units_pinned_by_their_bias_reports_them_stuck(activation):
    """In a plain net, layer 2's first two units of replica 0 get bias +-50 (sigmoid) or -50
    (relu). The probe's stuck fraction equals a count by hand on the reference net's inputs h
    of each activation: relu units with h <= 0 on all 64 examples, sigmoid units with |h| >
    5.9864 (sigmoid' < 1% of 0.25) on all of them; the pinned units are among them."""
    cfg = ModelConfig(activation, depth=3, norm="none", residual=False, width=8)
    net = BatchedMLP(cfg, 4, 3, seeds=[0, 1])
    with torch.no_grad():
        net.biases[1][0, :2] = torch.tensor([50.0, -50.0] if activation == "sigmoid" else -50.0)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 64, 4, generator=gen), torch.randint(0, 3, (2, 64), generator=gen)
    got = measure(net, x, y)["stuck"]
    for r in range(2):
        ref = ReferenceMLP(net, r)
        hs: list[torch.Tensor] = []
        for lin in ref.linears[:-1]:
            lin.register_forward_hook(lambda m, inp, out, hs=hs: hs.append(out.detach()))
        ref(x[r])
        if activation == "relu":
            by_hand = [(h <= 0).all(dim=0) for h in hs]
        else:
            by_hand = [(h.abs() > 5.9864).all(dim=0) for h in hs]
        expected = [float(s.float().mean()) for s in by_hand]
        assert got[r].tolist() == pytest.approx(expected)
        if r == 0:
            assert by_hand[1][:2].all() and expected[1] >= 2 / 8
    assert got[1, 1] < got[0, 1]  # replica 1, unpinned, has fewer


def test_relative_update_of_one_sgd_step_is_lr_times_gradient_over_weight():
    """One plain SGD step (no momentum): ||dW|| / ||W|| = lr ||g|| / ||W||, with g the gradient
    of the replica's own mean loss by autograd; each replica at its own rate."""
    cfg = ModelConfig("tanh", depth=3, norm="none", residual=False, width=6)
    net = BatchedMLP(cfg, 4, 3, seeds=[0, 1])
    lrs = torch.tensor([0.1, 0.5])
    opt, weights = make_optimizer("sgd", net.parameters(), lrs, momentum=0.0)
    x, y = torch.randn(2, 8, 4), torch.randint(0, 3, (2, 8))
    init = [w.detach().clone() for w in net.weights[:3]]
    grads = torch.autograd.grad(objective(net, x, y)[0].sum(), list(net.weights[:3]))
    opt.zero_grad()
    (objective(net, x, y)[0] * weights).sum().backward()
    opt.step()
    got = weight_stats(list(net.weights[:3]), init, previous=init)
    for r in range(2):
        expected = torch.stack(
            [lrs[r] * g[r].norm() / w[r].norm() for g, w in zip(grads, init, strict=True)]
        )
        torch.testing.assert_close(got["weight_update_rel"][r], expected, rtol=1e-5, atol=0)
        torch.testing.assert_close(got["weight_distance_rel"][r], expected, rtol=1e-5, atol=0)
    assert (got["weight_unchanged"] < 0.1).all()


def test_updates_below_half_an_ulp_leave_weights_bitwise_unchanged():
    """float32 drops an update below ~2^-24 of the weight: the layer does not move at all."""
    w0 = torch.ones(1, 3, 4)
    tiny = w0 - 1e-9  # 1e-9 < 2^-25: rounds back to 1.0
    assert torch.equal(tiny, w0)
    moved = w0.clone()
    moved[0, 0, 0] -= 1e-3
    got = weight_stats([tiny, moved], [w0, w0], previous=[w0, w0])
    assert got["weight_unchanged"][0].tolist() == pytest.approx([1.0, 11 / 12], rel=1e-7)
    assert got["weight_update_rel"][0, 0].item() == 0.0
    assert got["weight_distance_rel"][0, 1].item() == pytest.approx(1e-3 / 12**0.5, rel=1e-3)


def test_layer_1_weights_from_inputs_that_never_vary_are_not_counted_as_unchanged():
    w0 = torch.ones(1, 3, 4)
    w = w0.clone()
    w[0, 1:] += 1e-2  # rows 1 and 2 moved; row 0's input is constant, so it cannot
    live = torch.tensor([False, True, True])
    assert weight_stats([w], [w0], None)["weight_unchanged"][0, 0].item() == pytest.approx(4 / 12)
    assert weight_stats([w], [w0], None, live)["weight_unchanged"][0, 0].item() == 0.0
    w2 = w0.clone()
    w2[0, 0] += 1e-2  # the deeper layers count every row
    both = weight_stats([w, w2], [w0, w0], None, live)["weight_unchanged"][0]
    assert both.tolist() == pytest.approx([0.0, 8 / 12])


def test_probe_schedule_is_log_spaced_below_probe_every():
    assert [s for s in range(40) if is_probe_step(s, 10)] == [0, 1, 2, 4, 8, 10, 20, 30]
    assert [s for s in range(5) if is_probe_step(s, 1)] == [0, 1, 2, 3, 4]


def test_tiny_gradients_are_measured_down_to_float32s_range():
    """A gradient of 1e-25 in float32 has a square (1e-50) below float32's range: the rms is
    taken in float64, so it reads 1e-25, not 0."""
    cfg = ModelConfig("sigmoid", depth=2, norm="none", residual=False, width=4)
    net = BatchedMLP(cfg, 3, 2, seeds=[0])
    with torch.no_grad():
        net.weights[1].mul_(1e-25)  # the gradient reaching layer 1 is scaled by this
    x, y = torch.randn(1, 6, 3), torch.randint(0, 2, (1, 6))
    got = measure(net, x, y)["grad_preact_rms"][0]
    assert 1e-28 < got[0].item() < 1e-22 and got[1].item() > 1e-3


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_probes_in_chunks_of_replicas_equal_probes_of_all_at_once(norm):
    """Replicas never interact, so probing one (or two) replicas at a time gives exactly the
    values of one pass over all of them."""
    cfg = ModelConfig("relu", depth=4, norm=norm, residual=True, width=6)
    net = BatchedMLP(cfg, 4, 3, seeds=[0, 1, 2, 3, 4])
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 9, 4, generator=gen), torch.randint(0, 3, (5, 9), generator=gen)
    per_replica = 4 * 9 * 6 * 4 * 4  # probe_chunk's bytes per replica
    assert probe_chunk(net, 9) == 5 and probe_chunk(net, 9, per_replica * 2) == 2
    assert probe_chunk(net, 9, 1) == 1
    whole = measure(net, x, y)
    for max_bytes in (1, per_replica * 2):
        parts = measure(net, x, y, max_bytes=max_bytes)
        for q in whole:
            torch.testing.assert_close(parts[q], whole[q], rtol=0, atol=0, equal_nan=True)


def test_norms_of_gradients_near_float32_limits():
    """Entries of 1e-30 have squares below float32's range: the norm still reads 1e-30 * sqrt(n),
    and entries of 1e30 do not overflow; exact zeros read 0 (never NaN)."""
    tiny, huge, zero = torch.full((2, 50), 1e-30), torch.full((2, 50), 1e30), torch.zeros(2, 50)
    torch.testing.assert_close(
        frobenius(tiny), torch.full((2,), 1e-30 * 50**0.5, dtype=torch.float64)
    )
    torch.testing.assert_close(
        frobenius(huge), torch.full((2,), 1e30 * 50**0.5, dtype=torch.float64)
    )
    assert (frobenius(zero) == 0).all()


def test_gradients_that_underflow_are_recorded_as_zero():
    """A deep plain sigmoid net loses about a factor 4 per layer: the lowest layers' gradients
    underflow float32 and read exactly 0, those above read their tiny values; nothing is NaN."""
    cfg = ModelConfig("sigmoid", depth=120, norm="none", residual=False, width=8)
    net = BatchedMLP(cfg, 4, 3, seeds=[0, 1])
    x, y = torch.randn(2, 16, 4), torch.randint(0, 3, (2, 16))
    rms = measure(net, x, y)["grad_preact_rms"]
    assert not rms.isnan().any() and (rms[:, 0] == 0).all() and (rms[:, -1] > 1e-3).all()
    assert ((rms > 0) & (rms < 1e-30)).any()  # squares below float32's range, still measured


def test_forward_q_and_c_of_a_two_layer_net_by_hand():
    """q_l = mean over units and examples of h^2; c_l = mean over the P(P-1)/2 pairs a < b of
    q_ab / sqrt(q_aa q_bb), in numpy from the same weights, one pair at a time."""
    cfg = ModelConfig("tanh", depth=2, norm="none", residual=False, width=7, sigma_b2=0.1)
    net, x, y, got = two_replicas(cfg, seed=2)
    for r in range(2):
        w = [net.weights[i][r].detach().double().numpy() for i in range(2)]
        b = [net.biases[i][r].detach().double().numpy() for i in range(2)]
        h1 = x[r].double().numpy() @ w[0] + b[0]  # (5, 7)
        h2 = np.tanh(h1) @ w[1] + b[1]
        for layer, h in enumerate((h1, h2)):
            q = np.mean(h**2)
            cos = [
                np.mean(h[a] * h[c]) / np.sqrt(np.mean(h[a] ** 2) * np.mean(h[c] ** 2))
                for a in range(5)
                for c in range(a + 1, 5)
            ]
            assert len(cos) == 10
            assert got["forward_q"][r, layer].item() == pytest.approx(q, rel=1e-5)
            assert got["forward_c"][r, layer].item() == pytest.approx(np.mean(cos), abs=1e-6)


def test_forward_c_leaves_out_examples_without_a_direction():
    h = torch.tensor(
        [
            [[1.0, 2.0], [2.0, 4.0], [0.5, 1.0]],
            [[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]],
            [[0.0, 0.0], [0.0, 0.0], [3.0, 1.0]],
        ]
    )
    q, c = forward_moments(h)
    assert c[0].item() == pytest.approx(1.0)  # every example along one direction
    assert q[0].item() == pytest.approx((5 + 20 + 1.25) / 6)
    assert c[1].item() == pytest.approx(2**-0.5)  # the one pair left: (1, 0) and (1, 1)
    assert q[1].item() == pytest.approx(3 / 6)
    assert np.isnan(c[2].item())  # one example with a direction: no pair
    # pre-activations whose squares leave float32's range (and denormal ones) still read
    for scale in (1e-30, 1e-41):
        q_s, c_s = forward_moments(h * scale)
        assert q_s[1].item() == pytest.approx(3 / 6 * scale**2, rel=1e-2)
        assert c_s[1].item() == pytest.approx(2**-0.5, rel=1e-2)
