"""Optimizers whose learning rate differs along the replica dimension.

``torch.optim`` takes one learning rate per parameter tensor; here every tensor stacks R
replicas, each with its own rate. SGD gets it for free by weighting each replica's loss by its
rate (see ``make_optimizer``); Adam, which is invariant to that, is written here with
``torch._foreach_*`` ops (the update rule of ``torch.optim.Adam``) so that one call updates every
tensor: no per-replica or per-layer Python loop runs in the step.

``LayerNormalizedSGD`` (``lnsgd``) divides each layer's gradient by its own norm, replica by
replica, before the momentum step: every layer moves at the rate lr whatever the size of its
gradient, so a net whose lower layers get tiny gradients still trains them, unless the gradient
underflowed to exactly 0 or carries no information.

Weight decay is not an optimizer option here: it is the L2 term 0.5 * wd * ||theta_r||^2 added to
each replica's loss (``models.ReplicaNet.sq_norms``), whose gradient wd * theta_r is exactly what
``torch.optim.SGD(weight_decay=wd)`` and ``torch.optim.Adam(weight_decay=wd)`` add.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch


def _replica_shape(p: torch.Tensor) -> tuple[int, ...]:
    """The shape (R, 1, ..., 1) that broadcasts a per-replica vector (R,) over parameter p."""
    return (-1, *([1] * (p.dim() - 1)))


def _evaluate(closure) -> torch.Tensor | None:
    """The loss of an optimizer step's ``closure`` (with gradients on), None without one."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def freeze_replica(optimizer: torch.optim.Optimizer, replica: int) -> None:
    """Stop replica ``replica`` for good: zero its parameters and its optimizer state. (Its loss
    weight is zeroed by the caller, so its gradients are zero from then on.)"""
    with torch.no_grad():
        for group in optimizer.param_groups:
            for p in group["params"]:
                p[replica] = 0.0
                for value in optimizer.state[p].values():
                    if isinstance(value, torch.Tensor) and value.dim() > 0:
                        value[replica] = 0.0


class BatchedAdam(torch.optim.Optimizer):
    """Adam (Kingma & Ba) with betas (0.9, 0.999), eps 1e-8, and a per-replica rate."""

    def __init__(
        self,
        params,
        lr: torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        super().__init__(params, {"betas": betas, "eps": eps})
        self.t = 0
        self._neg_lr = [
            (-lr).to(device=p.device, dtype=p.dtype).view(_replica_shape(p)) for p in self._params()
        ]

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate(closure)
        group = self.param_groups[0]
        beta1, beta2 = group["betas"]
        params = self._params()
        grads = [p.grad for p in params]
        if "exp_avg" not in self.state[params[0]]:
            for p in params:
                self.state[p]["exp_avg"] = torch.zeros_like(p)
                self.state[p]["exp_avg_sq"] = torch.zeros_like(p)
        m = [self.state[p]["exp_avg"] for p in params]
        v = [self.state[p]["exp_avg_sq"] for p in params]
        self.t += 1
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)
        bias1 = 1 - beta1**self.t
        bias2_sqrt = (1 - beta2**self.t) ** 0.5
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, group["eps"])
        step = torch._foreach_div(m, denom)
        torch._foreach_mul_(step, self._neg_lr)
        torch._foreach_add_(params, step, alpha=1 / bias1)
        return loss


def layer_blocks(named: Iterable[tuple[str, torch.Tensor]]) -> list[list[int]]:
    """Indices of the parameters of each layer, for ``lnsgd``: parameters whose names end in
    the same index (``weights.3``, ``biases.3``, ``gammas.3``, ``betas.3``: layer 4's) form one
    block; a parameter without an index is a block of its own. In order of first appearance."""
    blocks: dict[str, list[int]] = {}
    for i, (name, _) in enumerate(named):
        m = re.search(r"\.(\d+)$", name)
        blocks.setdefault(m.group(1) if m else name, []).append(i)
    return list(blocks.values())


class LayerNormalizedSGD(torch.optim.Optimizer):
    """Layer-wise normalised SGD with momentum and a per-replica rate: for each replica r and
    layer (block of parameters) k, g~ = g / ||g||, the norm over the block's parameters
    (weights, biases and norm gains together), then buf = momentum * buf + g~ and
    p <- p - lr_r * buf, as ``torch.optim.SGD`` (dampening 0). This is the block-normalised
    gradient method with momentum of Yu, Huang, Lin, Salakhutdinov & Carbonell (2017, "Block-
    normalized gradient method: an empirical study for training deep neural network",
    arXiv:1707.04822), one block per layer. The norm is taken in float64, so a gradient far
    below float32's smallest square is still normalised; one that is exactly 0 stays 0."""

    def __init__(self, params, lr: torch.Tensor, momentum: float, blocks: list[list[int]]):
        params = list(params)
        super().__init__(params, {"momentum": momentum})
        if sorted(i for b in blocks for i in b) != list(range(len(params))):
            raise ValueError("blocks must partition the parameters' indices")
        self.blocks = blocks
        self._lr = [
            lr.to(device=p.device, dtype=torch.float64).view(_replica_shape(p)) for p in params
        ]

    @torch.no_grad()
    def step(self, closure=None):
        loss = _evaluate(closure)
        params = self.param_groups[0]["params"]
        momentum = self.param_groups[0]["momentum"]
        for block in self.blocks:
            grads = [params[i].grad for i in block]
            sq = sum(
                torch.linalg.vector_norm(g.flatten(1), dim=1, dtype=torch.float64) ** 2
                for g in grads
            )  # (R,)
            norm = sq.sqrt()
            inv = torch.where(norm > 0, 1.0 / norm, torch.zeros_like(norm))
            for i, g in zip(block, grads, strict=True):
                p = params[i]
                g_n = (g.double() * inv.view(_replica_shape(p))).to(p.dtype)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = g_n.clone()
                else:
                    state["momentum_buffer"].mul_(momentum).add_(g_n)
                p.sub_((state["momentum_buffer"].double() * self._lr[i]).to(p.dtype))
        return loss


def make_optimizer(
    name: str,
    params,
    lrs: torch.Tensor,
    momentum: float,
    adam_eps: float = 1e-8,
    blocks: list[list[int]] | None = None,
) -> tuple[torch.optim.Optimizer, torch.Tensor]:
    """The optimizer called ``name`` in the config, and the weights (R,) of the replicas' losses.

    SGD: ``torch.optim.SGD`` (fused where available) with lr 1, and each replica's loss weighted
    by its own lr. Since SGD is linear in the gradient this is exactly SGD at lr_r:
    buf' = m buf' + lr_r g = lr_r buf, p <- p - buf'. Adam is invariant to such scaling, so
    ``BatchedAdam`` (with eps ``adam_eps``) carries the (R,) rates itself and the loss weights
    are 1; so does ``LayerNormalizedSGD`` (``lnsgd``), whose ``blocks`` are the parameters'
    indices by layer (``layer_blocks``; default: each parameter its own block).
    """
    params = list(params)
    if name == "sgd":
        fused = all(p.device.type in ("cpu", "cuda") for p in params)
        opt = torch.optim.SGD(params, lr=1.0, momentum=momentum, fused=fused)
        return opt, lrs.clone()
    if name == "adam":
        return BatchedAdam(params, lrs, eps=adam_eps), torch.ones_like(lrs)
    if name == "lnsgd":
        blocks = blocks if blocks is not None else [[i] for i in range(len(params))]
        return LayerNormalizedSGD(params, lrs, momentum, blocks), torch.ones_like(lrs)
    raise ValueError(f"train.optimizer must be 'sgd', 'adam' or 'lnsgd', got {name!r}")
