"""The batched conv nets: each block order against plain PyTorch layers written out by hand,
replicas independent, the inits (delta-orthogonal), a conv probe by hand, and the theory of
the plain conv net against a measurement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vanishing.analysis.conv_theory import conv_profile
from vanishing.analysis.theory import fit_slope
from vanishing.architectures import conv_specs
from vanishing.config import ModelConfig
from vanishing.inits import conv_weight_variance, weight_variance
from vanishing.training.convnets import BatchedCNN, draw_conv, shortcut
from vanishing.training.probes import measure, weight_stats


def cnn(depth=8, norm="batch", residual=False, block="post", width=4, init="auto", act="relu"):
    cfg = ModelConfig(act, depth, norm, residual, width=width, init=init, block=block, arch="cnn")
    return cfg


def reference(net: BatchedCNN, r: int, x: torch.Tensor) -> torch.Tensor:
    """Replica r of ``net`` as nn.Conv2d / nn.BatchNorm2d layers in the documented order, on
    x (B, side^2) in training mode; logits (B, K)."""
    cfg, specs = net.cfg, net.specs
    convs, norms = [], []
    for i, (c_in, c_out, stride) in enumerate(specs):
        conv = nn.Conv2d(c_in, c_out, 3, stride, 1)
        norm = nn.BatchNorm2d(c_out) if cfg.norm == "batch" else nn.Identity()
        with torch.no_grad():
            conv.weight.copy_(net.weights[i][r])
            conv.bias.copy_(net.biases[i][r])
            if cfg.norm == "batch":
                norm.weight.copy_(net.gammas[i][r])
                norm.bias.copy_(net.betas[i][r])
        convs.append(conv)
        norms.append(norm)
    u = x.view(-1, 1, net.side, net.side)
    alpha = net.gain
    if not cfg.residual:
        for conv, norm in zip(convs, norms, strict=True):
            u = torch.relu(norm(conv(u)))
    else:
        if cfg.block == "pre":
            s = convs[0](u)
            u = torch.relu(norms[0](s))
        else:
            s = u = torch.relu(norms[0](convs[0](u)))
        for i in range(1, len(specs), 2):
            stride, c_out = specs[i][2], specs[i][1]
            sc = s[:, :, ::stride, ::stride]  # option A: subsample, zero channels appended
            sc = torch.cat([sc, sc.new_zeros(sc.shape[0], c_out - sc.shape[1], *sc.shape[2:])], 1)
            h = convs[i + 1](torch.relu(norms[i](convs[i](u))))
            if cfg.block == "pre":
                s = sc + alpha * h
                u = torch.relu(norms[i + 1](s))
            elif cfg.block == "post":
                s = u = torch.relu(sc + alpha * norms[i + 1](h))
            else:
                s = u = sc + alpha * torch.relu(norms[i + 1](h))
    feats = u.mean(dim=(2, 3))
    return feats @ net.weights[-1][r] + net.biases[-1][r]


@pytest.mark.parametrize(
    "norm, residual, block",
    [
        ("batch", False, "post"),
        ("none", False, "post"),
        ("batch", True, "post"),
        ("batch", True, "pre"),
        ("none", True, "branch_act"),
    ],  # fmt: skip
)
def test_every_block_order_matches_plain_pytorch(norm, residual, block):
    net = BatchedCNN(cnn(depth=14, norm=norm, residual=residual, block=block), 64, 10, [3, 4])
    x = torch.randn(2, 12, 64)
    logits, h, _ = net(x, keep=True)
    assert len(h) == 14 and h[0].shape == (2, 12, 4, 8, 8) and h[12].shape == (2, 12, 16, 2, 2)
    for r in range(2):
        torch.testing.assert_close(logits[r], reference(net, r, x[r]), rtol=1e-4, atol=1e-5)


def test_depth_counts_the_stem_the_convs_and_the_classifier():
    specs = conv_specs(20, 4)
    assert len(specs) == 19  # 6n + 1 convs for depth 6n + 2 (n = 3), then the classifier
    assert specs[0] == (1, 4, 1)
    assert [s for s in specs if s[2] == 2] == [(4, 8, 2), (8, 16, 2)]
    assert specs[-1] == (16, 16, 1)


def test_shortcut_subsamples_and_pads_per_replica():
    x = torch.arange(2 * 2 * 4 * 4, dtype=torch.float32).view(1, 2 * 2, 4, 4)  # R=2, C=2
    y = shortcut(x, 2, 4, R=2)
    assert y.shape == (1, 8, 2, 2)
    torch.testing.assert_close(y[0, 0], x[0, 0, ::2, ::2])
    torch.testing.assert_close(y[0, 4:6], x[0, 2:4, ::2, ::2])  # replica 1's own channels
    assert y[0, 2:4].abs().sum() == 0 and y[0, 6:].abs().sum() == 0


def test_replicas_are_independent_and_batch_norm_eval_uses_running_stats():
    cfg = cnn(depth=8, norm="batch", residual=True, block="pre")
    net = BatchedCNN(cfg, 64, 10, [0, 1, 2])
    alone = BatchedCNN(cfg, 64, 10, [1])
    x = torch.randn(3, 16, 64)
    torch.testing.assert_close(net(x)[0][1], alone(x[1:2])[0][0])  # running stats move too
    torch.testing.assert_close(net.running_mean_0[1], alone.running_mean_0[0])
    net.eval()
    mean, var = net.running_mean_0[0], net.running_var_0[0]
    h = F.conv2d(x[0].view(16, 1, 8, 8), net.weights[0][0], net.biases[0][0], padding=1)
    a = (h - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + 1e-5)
    _, _, acts = net(x, keep=True)
    torch.testing.assert_close(acts[0][0], a.reshape(16, -1), rtol=1e-4, atol=1e-5)


def test_delta_orthogonal_is_an_orthogonal_centre_tap():
    gen = torch.Generator().manual_seed(0)
    w, b = draw_conv(gen, "delta_orthogonal", 8, 16, "auto", "auto")
    assert w.shape == (16, 8, 3, 3) and b.abs().sum() == 0
    centre = w[:, :, 1, 1]
    torch.testing.assert_close(centre.t() @ centre, torch.eye(8), atol=1e-5, rtol=0)
    w[:, :, 1, 1] = 0
    assert w.abs().sum() == 0
    # second moment over the kernel: 8 unit columns over 16*8*9 entries = 1 / max(fan_in, fan_out)
    assert weight_variance("delta_orthogonal", 72, 144) == pytest.approx(8 / (16 * 8 * 9))


@pytest.mark.parametrize("scheme", ["kaiming", "xavier", "pytorch", "orthogonal"])
def test_conv_init_variance_uses_the_kernel_fan_in(scheme):
    w, _ = draw_conv(torch.Generator().manual_seed(1), scheme, 32, 64, "auto", "auto")
    expected = conv_weight_variance(scheme, 32, 64)
    assert w.pow(2).mean().item() == pytest.approx(expected, rel=0.03)
    w, _ = draw_conv(torch.Generator().manual_seed(1), scheme, 32, 64, 1.5, 0.0)
    assert w.pow(2).mean().item() * 32 * 9 == pytest.approx(1.5, rel=0.03)  # sigma_w2 set


def test_a_conv_probe_by_hand():
    """Layer 1's grad_preact_rms = sqrt(mean_i ||dL/dh_1[i]||^2) with L the summed loss, taken
    here by autograd through the hand-written reference; dead units over (channel, position);
    grad_weight_norm = ||d mean loss / dW_1||."""
    net = BatchedCNN(cnn(depth=8, norm="none"), 64, 10, [5])
    x, y = torch.randn(1, 32, 64), torch.randint(0, 10, (1, 32))
    got = measure(net, x, y)
    w1 = net.weights[0][0].detach().clone().requires_grad_(True)
    h1 = F.conv2d(x[0].view(32, 1, 8, 8), w1, net.biases[0][0].detach(), padding=1)
    h1.retain_grad()
    u = torch.relu(h1)
    for i in range(1, 7):
        u = torch.relu(F.conv2d(u, net.weights[i][0], net.biases[i][0], net.specs[i][2], 1))
    logits = u.mean(dim=(2, 3)) @ net.weights[-1][0] + net.biases[-1][0]
    F.cross_entropy(logits, y[0], reduction="sum").backward()
    rms = h1.grad.pow(2).sum(dim=(1, 2, 3)).mean().sqrt().item()
    assert got["grad_preact_rms"][0, 0].item() == pytest.approx(rms, rel=1e-4)
    assert got["grad_weight_norm"][0, 0].item() == pytest.approx(w1.grad.norm().item() / 32, 1e-4)
    dead = (h1.detach().amax(dim=0) <= 0).float().mean().item()
    assert got["saturation"][0, 0].item() == pytest.approx(dead)
    assert np.isnan(got["saturation"][0, -1].item())  # the classifier: no activation
    assert got["stuck"][0, 0].item() == pytest.approx(dead)  # relu: stuck = dead, one measure
    assert np.isnan(got["stuck"][0, -1].item())
    assert got["grad_preact_rms"].shape == (1, 8)


def test_weight_stats_on_conv_kernels():
    w0 = [torch.ones(2, 4, 3, 3, 3)]
    w = [w0[0].clone()]
    w[0][1, 0, 0, 0, 0] = 3.0  # one entry of replica 1 moved by 2
    got = weight_stats(w, w0, w0)
    np.testing.assert_allclose(got["weight_unchanged"][:, 0], [1.0, 1 - 1 / 108], rtol=1e-6)
    assert got["weight_distance_rel"][1, 0].item() == pytest.approx(2 / 108**0.5)


@pytest.mark.parametrize(
    "act, init",
    [
        ("relu", "lecun"),
        ("tanh", "pytorch"),
        ("sigmoid", "xavier"),
        ("relu", "delta_orthogonal"),
    ],  # fmt: skip
)
def test_plain_conv_theory_predicts_the_measured_slope(act, init):
    """Xiao et al. (2018): a plain conv net's gradient falls by the MLP's chi per conv layer.
    On 16x16 noise, 4 seeds, width 16, depth 20, the measured slope over the convs lies within
    20% (+0.01) of the prediction; zero padding (ignored by the theory) makes it steeper."""
    torch.manual_seed(0)
    net = BatchedCNN(
        cnn(depth=20, norm="none", width=16, init=init, act=act), 256, 10, [0, 1, 2, 3]
    )
    x, y = torch.randn(4, 128, 256), torch.randint(0, 10, (4, 128))
    rms = measure(net, x, y)["grad_preact_rms"].numpy()
    layers = np.arange(1, 20)
    measured = fit_slope(layers, np.log10(rms[:, :-1]).mean(axis=0))
    predicted = fit_slope(layers, conv_profile(act, init, "none", False, 20, 16)[:-1])
    assert predicted > 0.1  # these all vanish toward the input
    assert abs(measured - predicted) <= 0.2 * predicted + 0.01


def test_conv_profile_known_values():
    relu_he = conv_profile("relu", "kaiming", "none", False, 8, 4)
    np.testing.assert_allclose(relu_he[:-1], 0.0, atol=1e-9)  # chi = 1 at every conv
    assert np.isnan(relu_he[-1])
    bn = conv_profile("relu", "kaiming", "batch", False, 8, 4)
    np.testing.assert_allclose(np.diff(bn[:-1]), -0.5 * np.log10(np.pi / (np.pi - 1)))
    assert conv_profile("relu", "kaiming", "none", True, 8, 4) is None


def test_same_seed_same_numbers_on_cpu():
    cfg = cnn(depth=14, norm="batch", residual=True, block="pre")
    x, y = torch.randn(2, 16, 64), torch.randint(0, 10, (2, 16))
    a, b = (measure(BatchedCNN(cfg, 64, 10, [7, 8]), x, y) for _ in range(2))
    for q in a:
        torch.testing.assert_close(a[q], b[q], rtol=0, atol=0, equal_nan=True)
