"""Optimizers whose learning rate differs along the replica dimension.

``torch.optim`` takes one learning rate per parameter tensor; here every tensor stacks R
replicas, each with its own rate. SGD gets it for free by weighting each replica's loss by its
rate (see ``make_optimizer``); Adam, which is invariant to that, is written here with
``torch._foreach_*`` ops (the update rule of ``torch.optim.Adam``) so that one call updates every
tensor: no per-replica or per-layer Python loop runs in the step.

Weight decay is not an optimizer option here: it is the L2 term 0.5 * wd * ||theta_r||^2 added to
each replica's loss (``models.BatchedMLP.sq_norms``), whose gradient wd * theta_r is exactly what
``torch.optim.SGD(weight_decay=wd)`` and ``torch.optim.Adam(weight_decay=wd)`` add.
"""

from __future__ import annotations

import torch


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
            (-lr).to(device=p.device, dtype=p.dtype).view(-1, *([1] * (p.dim() - 1)))
            for p in self._params()
        ]

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
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


def make_optimizer(
    name: str, params, lrs: torch.Tensor, momentum: float
) -> tuple[torch.optim.Optimizer, torch.Tensor]:
    """The optimizer called ``name`` in the config, and the weights (R,) of the replicas' losses.

    SGD: ``torch.optim.SGD`` (fused where available) with lr 1, and each replica's loss weighted
    by its own lr. Since SGD is linear in the gradient this is exactly SGD at lr_r:
    buf' = m buf' + lr_r g = lr_r buf, p <- p - buf'. Adam is invariant to such scaling, so
    ``BatchedAdam`` carries the (R,) rates itself and the loss weights are 1.
    """
    params = list(params)
    if name == "sgd":
        fused = all(p.device.type in ("cpu", "cuda") for p in params)
        opt = torch.optim.SGD(params, lr=1.0, momentum=momentum, fused=fused)
        return opt, lrs.clone()
    if name == "adam":
        return BatchedAdam(params, lrs), torch.ones_like(lrs)
    raise ValueError(f"train.optimizer must be 'sgd' or 'adam', got {name!r}")
