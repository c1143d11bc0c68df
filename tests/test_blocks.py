"""The residual blocks (pre, post, branch_act) and learnable branch gains against hand
computations, the forward stream at depth 256, and the stream probes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference import ReferenceMLP

from vanishing.config import ModelConfig
from vanishing.training.models import BatchedMLP
from vanishing.training.probes import measure


def net_of(block, activation="relu", depth=3, norm="none", scale=1.0, width=4, seeds=(5,), d=3):
    cfg = ModelConfig(activation, depth=depth, norm=norm, residual=True, width=width,
                      block=block, residual_scale=scale)  # fmt: skip
    return BatchedMLP(cfg, input_dim=d, n_classes=2, seeds=list(seeds))


def params(net):
    return [p[0] for p in net.weights], [p[0] for p in net.biases]


def test_pre_block_by_hand():
    """depth 3, layer norm, alpha 1/sqrt(3): x1 = relu(LN(x W1 + b1)) (the stem), then
    x_l = x_{l-1} + alpha (relu(LN(x_{l-1})) W_l + b_l): norm -> activation -> Linear."""
    net = net_of("pre", norm="layer", scale="inv_sqrt_depth")
    x = torch.randn(1, 6, 3)
    w, b = params(net)
    alpha = 3**-0.5
    x1 = torch.relu(F.layer_norm(x[0] @ w[0] + b[0], (4,)))
    x2 = x1 + alpha * (torch.relu(F.layer_norm(x1, (4,))) @ w[1] + b[1])
    x3 = x2 + alpha * (torch.relu(F.layer_norm(x2, (4,))) @ w[2] + b[2])
    torch.testing.assert_close(net(x)[0][0], x3 @ w[3] + b[3])


def test_post_block_by_hand():
    """depth 3, batch norm, alpha 0.5: x_l = relu(x_{l-1} + alpha BN(x_{l-1} W_l + b_l)):
    the branch ends in its Linear and the norm, the activation follows the sum."""
    net = net_of("post", norm="batch", scale=0.5)
    x = torch.randn(1, 6, 3)
    w, b = params(net)

    def bn(h):  # training mode: batch statistics, biased variance, gains 1 and shifts 0
        return (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5)

    x1 = torch.relu(bn(x[0] @ w[0] + b[0]))
    x2 = torch.relu(x1 + 0.5 * bn(x1 @ w[1] + b[1]))
    x3 = torch.relu(x2 + 0.5 * bn(x2 @ w[2] + b[2]))
    torch.testing.assert_close(net(x)[0][0], x3 @ w[3] + b[3])


@pytest.mark.parametrize("block", ["pre", "post", "branch_act"])
@pytest.mark.parametrize("scale", ["skipinit", "fixup"])
def test_learned_gains_make_every_block_the_identity_at_init(block, scale):
    """skipinit (gain 0) and fixup (gain 1, branch Linear 0): at init the net is its stem and
    the classifier, relu(x W1 + b1) W_out + b_out, for every block (relu(0) = 0, and the post
    block's relu leaves the non-negative stream as it is)."""
    net = net_of(block, depth=4, scale=scale)
    x = torch.randn(1, 6, 3)
    w, b = params(net)
    torch.testing.assert_close(net(x)[0][0], torch.relu(x[0] @ w[0] + b[0]) @ w[4] + b[4])
    gains = torch.stack(list(net.gains))  # (depth - 1, R), one learnable gain per block
    assert gains.shape == (3, 1) and bool((gains == (0.0 if scale == "skipinit" else 1.0)).all())
    blocks_zero = all(not bool(w_l.any()) for w_l in w[1:4])
    assert blocks_zero == (scale == "fixup")  # skipinit keeps the drawn branch weights
    assert bool(w[0].any()) and bool(w[4].any())  # stem and classifier as drawn


def stream_sizes(block: str, depth: int = 256) -> torch.Tensor:
    """stream_rms per layer (R, depth) at init, relu, no norm, alpha = 1/sqrt(depth)."""
    net = net_of(block, depth=depth, scale="inv_sqrt_depth", width=64, seeds=(0, 1), d=64)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 128, 64, generator=gen)
    y = torch.randint(0, 2, (2, 128), generator=gen)
    return measure(net, x, y)["stream_rms"]


@pytest.mark.parametrize("block", ["pre", "post"])
def test_centred_blocks_keep_the_stream_bounded_at_depth_256(block):
    """relu, no norm, alpha = 1/sqrt(256): each centred block adds O(1/depth) to the stream's
    second moment, so after 255 blocks it is within a factor 10 of the stem's (pre: at most
    e^1 by the variance map; measured about 2.1)."""
    s = stream_sizes(block)
    ratio = s[:, -1] / s[:, 0]
    assert bool((ratio < 10).all()) and bool((ratio > 0.1).all()), ratio


def test_branch_act_block_explodes_at_depth_256():
    """The old block at the same settings: its non-negative branch adds a mean that every
    block amplifies (issue 17: stream rms x10^3.8)."""
    s = stream_sizes("branch_act")
    assert bool((s[:, -1] / s[:, 0] > 1e3).all())


@pytest.mark.parametrize(("block", "norm", "scale"),
                         [("pre", "batch", 1.0), ("post", "none", 0.3),
                          ("branch_act", "layer", "skipinit")])  # fmt: skip
def test_stream_probes_match_autograd(block, norm, scale):
    """grad_stream_rms = sqrt(mean_i ||dL/dx_l[i]||^2) with L the probe batch's summed loss,
    stream_rms = rms of x_l over examples and units, on the plain PyTorch reference; and under
    skipinit the stream's gradient is the same at every block (each is the identity)."""
    net = net_of(block, activation="tanh", norm=norm, scale=scale, width=6, seeds=(0, 1), d=4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 4, generator=gen)
    y = torch.randint(0, 2, (2, 5), generator=gen)
    got = measure(net, x, y)
    for r in range(2):
        ref, xs = ReferenceMLP(net, r), []
        loss = F.cross_entropy(ref(x[r], stream=xs), y[r], reduction="sum")
        grads = torch.autograd.grad(loss, xs)
        expected = torch.stack([g.pow(2).sum(1).mean().sqrt() for g in grads])
        torch.testing.assert_close(got["grad_stream_rms"][r], expected, rtol=1e-4, atol=1e-7,
                                   check_dtype=False)  # fmt: skip
        sizes = torch.stack([t.pow(2).mean().sqrt() for t in xs])
        torch.testing.assert_close(got["stream_rms"][r], sizes, rtol=1e-4, atol=1e-7,
                                   check_dtype=False)  # fmt: skip
    if scale == "skipinit":
        g = got["grad_stream_rms"]
        torch.testing.assert_close(g, g[:, :1].expand_as(g), rtol=1e-5, atol=0, check_dtype=False)
        assert float(got["grad_preact_rms"][:, 1:].abs().max()) == 0.0  # alpha = 0: no signal


@pytest.mark.parametrize(("block", "norm", "scale"),
                         [("pre", "batch", "inv_sqrt_depth"), ("post", "layer", 1.0),
                          ("pre", "none", "skipinit")])  # fmt: skip
def test_replicas_in_a_batch_equal_the_replica_alone(block, norm, scale):
    """Replica 1 of a 3-replica net gives the same logits and probes as seed 1 alone."""
    batch = net_of(block, norm=norm, scale=scale, depth=5, width=8, seeds=(0, 1, 2), d=4)
    alone = net_of(block, norm=norm, scale=scale, depth=5, width=8, seeds=(1,), d=4)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 4, generator=gen)
    y = torch.randint(0, 2, (3, 7), generator=gen)
    torch.testing.assert_close(batch(x)[0][1], alone(x[1:2])[0][0], rtol=1e-5, atol=1e-6)
    got, ref = measure(batch, x, y), measure(alone, x[1:2], y[1:2])
    for q in ("grad_preact_rms", "grad_stream_rms", "stream_rms", "grad_weight_norm"):
        torch.testing.assert_close(got[q][1], ref[q][0], rtol=1e-4, atol=1e-7)


def test_residual_scale_values_parse_and_bad_ones_are_named():
    from vanishing.config import branch_gain
    from vanishing.settings import parse_residual_scale

    assert [parse_residual_scale(v) for v in ("skipinit", "fixup", "0.5")] == [
        "skipinit", "fixup", 0.5,
    ]  # fmt: skip
    assert (branch_gain("skipinit", 9), branch_gain("fixup", 9)) == (0.0, 1.0)
    with pytest.raises(ValueError, match="residual_scale must be a number, inv_sqrt_depth, "
                       "skipinit or fixup; got 'rezero'"):  # fmt: skip
        parse_residual_scale("rezero")
