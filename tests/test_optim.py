"""BatchedAdam against torch.optim.Adam, replica by replica; freezing a replica."""

from __future__ import annotations

import torch

from vanishing.training.optim import (
    BatchedAdam,
    LayerNormalizedSGD,
    freeze_replica,
    layer_blocks,
    make_optimizer,
)


def test_batched_adam_matches_torch_adam_per_replica():
    gen = torch.Generator().manual_seed(0)
    init = torch.randn(3, 4, 5, generator=gen)
    lrs = torch.tensor([1e-3, 1e-2, 1e-1])
    p = torch.nn.Parameter(init.clone())
    opt = BatchedAdam([p], lrs)
    refs = [torch.nn.Parameter(init[r].clone()) for r in range(3)]
    ref_opts = [torch.optim.Adam([q], lr=float(lr)) for q, lr in zip(refs, lrs, strict=True)]
    for _ in range(15):
        target = torch.randn(3, 4, 5, generator=gen)
        opt.zero_grad()
        ((p - target) ** 3).abs().sum().backward()
        opt.step()
        for r, (q, o) in enumerate(zip(refs, ref_opts, strict=True)):
            o.zero_grad()
            ((q - target[r]) ** 3).abs().sum().backward()
            o.step()
            torch.testing.assert_close(p[r].detach(), q.detach(), rtol=1e-5, atol=1e-6)


def test_sgd_loss_weights_are_the_learning_rates():
    p = torch.nn.Parameter(torch.zeros(2, 3))
    opt, weights = make_optimizer("sgd", [p], torch.tensor([0.1, 0.5]), momentum=0.0)
    torch.testing.assert_close(weights, torch.tensor([0.1, 0.5]))
    (weights[:, None] * p).sum().backward()  # d/dp of sum_r w_r * sum(p_r): w_r everywhere
    opt.step()
    torch.testing.assert_close(p.detach(), -torch.tensor([[0.1] * 3, [0.5] * 3]))


def test_freeze_zeroes_parameters_and_state_of_one_replica():
    p = torch.nn.Parameter(torch.ones(3, 2))
    opt, _ = make_optimizer("sgd", [p], torch.full((3,), 0.5), momentum=0.9)
    p.grad = torch.full((3, 2), 0.25)  # what the loss weights would give
    opt.step()
    freeze_replica(opt, 1)
    assert p[1].abs().sum() == 0 and p[0].abs().sum() > 0
    assert opt.state[p]["momentum_buffer"][1].abs().sum() == 0
    assert opt.state[p]["momentum_buffer"][2].abs().sum() > 0


def test_one_lnsgd_step_by_hand():
    """Two layers (blocks), two replicas, momentum 0.5: each replica's layer gradient divided
    by its own norm over the layer's weight and bias, then the momentum step at its rate."""
    w = torch.nn.Parameter(torch.zeros(2, 2, 2))
    b = torch.nn.Parameter(torch.zeros(2, 2))
    v = torch.nn.Parameter(torch.zeros(2, 3))  # a second layer, its own block
    named = [("weights.0", w), ("biases.0", b), ("weights.1", v)]
    blocks = layer_blocks(named)
    assert blocks == [[0, 1], [2]]
    lrs = torch.tensor([0.1, 1.0])
    opt, weights = make_optimizer("lnsgd", [w, b, v], lrs, momentum=0.5, blocks=blocks)
    torch.testing.assert_close(weights, torch.ones(2))
    gw = torch.tensor([[[3.0, 0.0], [0.0, 0.0]], [[1e-30, 0.0], [0.0, 0.0]]])
    gb = torch.tensor([[0.0, 4.0], [0.0, 0.0]])  # replica 0's layer norm: 5; replica 1's: 1e-30
    gv = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0]])  # replica 0's layer 2: exactly 0
    for _ in range(2):
        w.grad, b.grad, v.grad = gw.clone(), gb.clone(), gv.clone()
        opt.step()
    # two steps: buf = g~ then 0.5 g~ + g~ = 1.5 g~; p = -lr (1 + 1.5) g~ = -2.5 lr g~
    expected_w = -2.5 * torch.tensor([[[0.1 * 0.6, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])
    expected_b = -2.5 * torch.tensor([[0.0, 0.1 * 0.8], [0.0, 0.0]])
    expected_v = -2.5 * torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    torch.testing.assert_close(w.detach(), expected_w)
    torch.testing.assert_close(b.detach(), expected_b)
    torch.testing.assert_close(v.detach(), expected_v)  # a zero gradient stays zero


def test_adam_eps_reaches_the_optimizer():
    from vanishing.config import Cell, DataConfig, ModelConfig, TrainConfig
    from vanishing.training.data import load_splits
    from vanishing.training.module import CellModule

    splits = load_splits(DataConfig(), probe_size=8)
    for name, eps in (("adam", 1e-30), ("adam", 1e-8), ("lnsgd", 1e-30)):
        train = TrainConfig(optimizer=name, adam_eps=eps, epochs=1, probe_size=8)
        c = Cell("c", DataConfig(), ModelConfig("sigmoid", 3, "none", False, width=8), train)
        module = CellModule(c, splits, [0, 1], [0.1, 0.1])
        opt = module.configure_optimizers()
        if name == "adam":
            assert isinstance(opt, BatchedAdam) and opt.param_groups[0]["eps"] == eps
        else:  # one block per layer: W, b of each hidden layer and the classifier
            assert isinstance(opt, LayerNormalizedSGD)
            assert opt.blocks == [[0, 4], [1, 5], [2, 6], [3, 7]]
