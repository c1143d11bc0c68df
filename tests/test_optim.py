"""BatchedAdam against torch.optim.Adam, replica by replica; freezing a replica."""

from __future__ import annotations

import torch

from vanishing.training.optim import BatchedAdam, freeze_replica, make_optimizer


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
