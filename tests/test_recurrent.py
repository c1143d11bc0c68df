"""The batched recurrent nets: equality with PyTorch's nn.RNN / nn.GRU / nn.LSTM replica by
replica, the inits of the recurrent matrix, and the per-step probes against autograd and
mean-field theory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from vanishing.config import ModelConfig
from vanishing.training.probes_time import measure_time
from vanishing.training.recurrent import BatchedRNN

H, D, K, T = 8, 3, 4, 6


def make(arch="rnn", activation="tanh", seeds=(0, 1), T=T, width=H, D=D, **kw):
    cfg = ModelConfig(activation, depth=1, norm=kw.pop("norm", "none"), residual=False,
                      width=width, arch=arch, **kw)  # fmt: skip
    return BatchedRNN(cfg, input_dim=T * D, n_classes=K, seeds=list(seeds), seq_len=T)


def reference(net: BatchedRNN, r: int):
    """PyTorch's own recurrent layer holding replica r's weights (no hidden-to-hidden bias)."""
    arch = net.cfg.arch
    cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[arch]
    kw = {"nonlinearity": net.cfg.activation} if arch == "rnn" else {}
    ref = cls(D, H, batch_first=True, **kw)
    with torch.no_grad():
        ref.weight_ih_l0.copy_(net.U[r].t())
        ref.weight_hh_l0.copy_(net.W[r].t())
        ref.bias_ih_l0.copy_(net.b[r])
        ref.bias_hh_l0.zero_()
    return ref


@pytest.mark.parametrize("arch, activation", [("rnn", "tanh"), ("rnn", "relu"), ("gru", "tanh"),
                                              ("lstm", "tanh")])  # fmt: skip
def test_each_replica_equals_pytorch(arch, activation):
    net = make(arch, activation)
    x = torch.randn(2, 5, T * D)
    logits, _, _ = net(x)
    for r in range(2):
        out, _ = reference(net, r)(x[r].view(5, T, D))
        expected = out[:, -1] @ net.w_out[r] + net.b_out[r]
        torch.testing.assert_close(logits[r], expected, rtol=1e-5, atol=1e-6)


def test_replicas_do_not_interact():
    x = torch.randn(1, 5, T * D)
    both = make(seeds=(0, 1))(x.expand(2, -1, -1))[0]
    alone = make(seeds=(1,))(x)[0]
    torch.testing.assert_close(both[1], alone[0])


def test_recurrent_inits():
    eye = make("rnn", "relu", init="identity", width=16).W[0]
    torch.testing.assert_close(eye, torch.eye(16))
    q = make("gru", init="orthogonal", width=16).W[0]  # (16, 3 * 16): one block per gate
    for g in range(3):
        block = q[:, 16 * g : 16 * (g + 1)]
        torch.testing.assert_close(block.t() @ block, torch.eye(16), atol=1e-5, rtol=0)
    w = make("rnn", sigma_w2=2.5, width=256, seeds=(0,)).W[0]
    # second moment of 65k entries times H: relative standard error ~ sqrt(2/65536) = 0.6%
    assert abs(float(w.detach().pow(2).mean()) * 256 / 2.5 - 1) < 0.03
    lstm = make("lstm")
    assert (lstm.b[:, H : 2 * H] == 1).all() and (lstm.b[:, :H] == 0).all()  # forget bias 1


@pytest.mark.parametrize("arch", ["rnn", "gru", "lstm"])
def test_probe_state_gradient_equals_autograd(arch):
    """grad_preact_rms at step t is sqrt(mean_i ||dL/dh_t[i]||^2), checked against a plain loop
    that keeps each state's gradient; step 1's share of dL/dW is 0 (h_0 = 0)."""
    net = make(arch, seeds=(3,))
    x, y = torch.randn(1, 7, T * D), torch.randint(0, K, (1, 7))
    got = measure_time(net, x, y)
    ref = reference(net, 0)
    h = torch.zeros(1, 7, H)
    c = torch.zeros(1, 7, H)
    states = []
    for t in range(T):
        xt = x[0].view(7, T, D)[:, t : t + 1]
        out, hc = ref(xt, (h, c) if arch == "lstm" else h)
        h, c = hc if arch == "lstm" else (hc, None)
        h.retain_grad()
        states.append(h)
    logits = h[0] @ net.w_out[0] + net.b_out[0]
    nn.functional.cross_entropy(logits, y[0], reduction="sum").backward()
    expected = [float(s.grad.pow(2).sum() / 7) ** 0.5 for s in states]
    np.testing.assert_allclose(got["grad_preact_rms"][0].numpy(), expected, rtol=1e-4)
    assert got["grad_weight_norm"][0, 0] == 0 and (got["grad_weight_norm"][0, 1:] > 0).all()
    rms = [float(s.detach().pow(2).mean()) ** 0.5 for s in states]
    np.testing.assert_allclose(got["state_rms"][0].numpy(), rms, rtol=1e-5)
    # a stuck unit's pairs are all saturated (1% < 5% of tanh's max slope): stuck <= saturation
    assert got["stuck"].shape == (1, T) and (got["stuck"] <= got["saturation"]).all()


def test_probe_slope_matches_mean_field_below_criticality():
    """tanh, Gaussian W at sigma_w2 = 0.25, inputs only at step 1: the state decays towards 0,
    where tanh' = 1, so each step multiplies the squared gradient by sigma_w2 on average:
    log10 ||dL/dh_t|| rises by log10(0.25) / 2 = -0.301 per step towards the end."""
    T_long, width = 30, 128
    net = make("rnn", sigma_w2=0.25, width=width, T=T_long, seeds=range(8))
    x = torch.zeros(8, 64, T_long * D)
    x[:, :, :D] = torch.randn(8, 64, D)
    y = torch.randint(0, K, (8, 64))
    g = measure_time(net, x, y)["grad_preact_rms"].log10().mean(0).numpy()  # (T,)
    t = np.arange(1, T_long + 1)
    slope = np.polyfit(t[5:], g[5:], 1)[0]  # decades per step, later step higher
    assert slope == pytest.approx(-0.5 * math.log10(0.25), rel=0.1)


def test_training_a_cell_is_repeatable_on_cpu():
    """The same config and seeds give the same probes and accuracies, bit for bit, and each
    layer_gradients row of a recurrent net is a time step."""
    from vanishing.config import make_cell
    from vanishing.training.data import load_splits
    from vanishing.training.module import fit_cell
    from vanishing.training.runner import cell_tables

    values = dict(data="adding", seq_len=10, arch="gru", activation="tanh", depth=1, norm="none",
                  residual=False, epochs=1, probe_every=20, probe_size=32)  # fmt: skip
    cell = make_cell(values, "c", [0, 1], [0.01])
    splits = load_splits(cell.data, 32)
    a, _ = fit_cell(cell, splits)
    b, _ = fit_cell(cell, splits)
    for (sa, va), (sb, vb) in zip(a.history.probes, b.history.probes, strict=True):
        assert sa == sb
        for q in va:
            np.testing.assert_array_equal(va[q], vb[q])
    np.testing.assert_array_equal(a.history.final["final_test_accuracy"],
                                  b.history.final["final_test_accuracy"])  # fmt: skip
    _, layers, _ = cell_tables(cell, splits, a, 0.0)
    assert sorted(layers["layer"].unique()) == list(range(1, 11))
    step0 = layers[layers["step"] == 0]
    assert (step0["weight_unchanged"] == 1).all() and step0["state_rms"].notna().all()
