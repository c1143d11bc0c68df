"""The batched MLP: shapes, block order, initialisation, and equality with plain PyTorch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference import ReferenceMLP

from vanishing.config import ModelConfig
from vanishing.inits import bias_variance, weight_variance
from vanishing.training.models import BatchedMLP, draw_linear, objective, replica_seeds
from vanishing.training.optim import make_optimizer


def test_shapes_and_parameter_count():
    cfg = ModelConfig("relu", depth=3, norm="batch", residual=True, width=8)
    net = BatchedMLP(cfg, input_dim=5, n_classes=4, seeds=[0, 1])
    logits, h, a = net(torch.randn(2, 7, 5), keep=True)
    assert logits.shape == (2, 7, 4)
    assert [t.shape for t in h] == [(2, 7, 8)] * 3 and len(a) == 3
    # per replica: 5*8+8 + 2*(8*8+8) + 8*4+4 weights and biases, 3*2*8 norm gains and shifts
    per_replica = 48 + 2 * 72 + 36 + 48
    assert sum(p.numel() for p in net.parameters()) == 2 * per_replica


def test_block_order_by_hand():
    """depth 2, residual, layer norm: x1 = phi(LN(x W1 + b1)); x2 = x1 + phi(LN(x1 W2 + b2))."""
    cfg = ModelConfig("tanh", depth=2, norm="layer", residual=True, width=4, block="branch_act")
    net = BatchedMLP(cfg, input_dim=3, n_classes=2, seeds=[5])
    x = torch.randn(1, 6, 3)
    w, b = [p[0] for p in net.weights], [p[0] for p in net.biases]
    x1 = torch.tanh(F.layer_norm(x[0] @ w[0] + b[0], (4,)))
    x2 = x1 + torch.tanh(F.layer_norm(x1 @ w[1] + b[1], (4,)))
    expected = x2 @ w[2] + b[2]
    torch.testing.assert_close(net(x)[0][0], expected)


def test_residual_branch_scaled_by_hand():
    """depth 3, residual, no norm, alpha = 1/sqrt(3): x_l = x_{l-1} + alpha relu(x_{l-1} W + b)."""
    cfg = ModelConfig("relu", depth=3, norm="none", residual=True, width=4, block="branch_act")
    cfg = ModelConfig(**{**cfg.__dict__, "residual_scale": "inv_sqrt_depth"})
    net = BatchedMLP(cfg, input_dim=3, n_classes=2, seeds=[5])
    x = torch.randn(1, 6, 3)
    w, b = [p[0] for p in net.weights], [p[0] for p in net.biases]
    alpha = 3**-0.5
    x1 = torch.relu(x[0] @ w[0] + b[0])  # the first layer changes the width: no skip
    x2 = x1 + alpha * torch.relu(x1 @ w[1] + b[1])
    x3 = x2 + alpha * torch.relu(x2 @ w[2] + b[2])
    torch.testing.assert_close(net(x)[0][0], x3 @ w[3] + b[3])


@pytest.mark.parametrize("scheme", ["pytorch", "xavier", "kaiming", "orthogonal"])
def test_init_variance_matches_scheme(scheme):
    gen = torch.Generator().manual_seed(0)
    fan_in, fan_out = 400, 300
    w, b = draw_linear(gen, scheme, fan_in, fan_out)
    assert w.shape == (fan_in, fan_out)
    expected = weight_variance(scheme, fan_in, fan_out)
    # second moment of 120k entries: relative standard error ~ sqrt(2/120000) = 0.4%
    assert w.pow(2).mean().item() == pytest.approx(expected, rel=0.02)
    assert b.pow(2).mean().item() == pytest.approx(bias_variance(scheme, fan_in), rel=0.2, abs=1e-9)


def test_pytorch_scheme_is_nn_linear_default_scale():
    """Var(W) * fan_in = 1/3 for nn.Linear's default init, the reason even ReLU nets vanish."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(500, 500)
    assert lin.weight.var().item() * 500 == pytest.approx(1 / 3, rel=0.02)
    assert weight_variance("pytorch", 500, 500) * 500 == pytest.approx(1 / 3)


def test_orthogonal_rows_are_orthonormal():
    w, _ = draw_linear(torch.Generator().manual_seed(1), "orthogonal", 16, 16)
    torch.testing.assert_close(w.t() @ w, torch.eye(16), atol=1e-5, rtol=0)


def test_replica_init_depends_only_on_its_seed():
    cfg = ModelConfig("relu", depth=2, norm="none", residual=False, width=6)
    alone = BatchedMLP(cfg, 4, 3, seeds=[7])
    batch = BatchedMLP(cfg, 4, 3, seeds=[3, 7, 7, 9])
    for p_alone, p_batch in zip(alone.parameters(), batch.parameters(), strict=True):
        torch.testing.assert_close(p_batch[1], p_alone[0], rtol=0, atol=0)
        torch.testing.assert_close(p_batch[2], p_alone[0], rtol=0, atol=0)
    assert not torch.equal(batch.weights[0][0], batch.weights[0][1])
    assert replica_seeds(7)[0] != replica_seeds(7)[1]


@pytest.mark.parametrize(
    "activation,norm,residual,block,scale",
    [
        ("sigmoid", "none", False, "pre", 1.0),
        ("relu", "batch", False, "pre", 1.0),
        ("gelu", "layer", True, "branch_act", 1.0),
        ("tanh", "batch", True, "branch_act", 1.0),
        ("relu", "batch", True, "pre", "inv_sqrt_depth"),
        ("tanh", "layer", True, "post", 0.5),
        ("relu", "batch", True, "post", "fixup"),
        ("gelu", "none", True, "pre", "skipinit"),
    ],
)
def test_training_matches_plain_pytorch(activation, norm, residual, block, scale):
    """20 SGD steps of a batched model (lr per replica via loss weights) equal 20 steps of each
    replica as ordinary nn layers with torch.optim.SGD at its own lr (every block, learnable
    branch gains included)."""
    cfg = ModelConfig(activation, depth=3, norm=norm, residual=residual, width=16, block=block,
                      residual_scale=scale)  # fmt: skip
    lrs = torch.tensor([0.05, 0.2, 0.01])
    net = BatchedMLP(cfg, 10, 4, seeds=[0, 1, 2])
    refs = [ReferenceMLP(net, r) for r in range(3)]
    opt, weights = make_optimizer("sgd", net.parameters(), lrs, momentum=0.9)
    ref_opts = [
        torch.optim.SGD(m.parameters(), lr=float(lr), momentum=0.9)
        for m, lr in zip(refs, lrs, strict=True)
    ]
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        x = torch.randn(3, 32, 10, generator=gen)
        y = torch.randint(0, 4, (3, 32), generator=gen)
        loss_r, _ = objective(net, x, y)
        opt.zero_grad()
        (loss_r * weights).sum().backward()
        opt.step()
        for r, (m, o) in enumerate(zip(refs, ref_opts, strict=True)):
            loss = F.cross_entropy(m(x[r]), y[r])
            torch.testing.assert_close(loss_r[r], loss, rtol=1e-4, atol=1e-5)
            o.zero_grad()
            loss.backward()
            o.step()
    for r, m in enumerate(refs):
        torch.testing.assert_close(net.weights[0][r], m.linears[0].weight.t(), rtol=1e-3, atol=1e-5)
        torch.testing.assert_close(net.weights[2][r], m.linears[2].weight.t(), rtol=1e-3, atol=1e-5)
        if hasattr(net, "gains"):  # the learnable branch gains moved as the reference's did
            assert net.gains[1][r].item() == pytest.approx(m.alphas[1].item(), abs=1e-5)
            assert net.gains[1][r].item() != net.gain
        if norm == "batch":  # running statistics per replica, as nn.BatchNorm1d keeps them
            torch.testing.assert_close(
                net.running_var_1[r], m.norms[1].running_var, rtol=1e-3, atol=1e-5
            )
            torch.testing.assert_close(
                net.running_mean_2[r], m.norms[2].running_mean, rtol=1e-3, atol=1e-5
            )
