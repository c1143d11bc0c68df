"""SGD with momentum and Adam whose learning rate differs along the replica dimension.

``torch.optim`` takes one learning rate per parameter tensor; here every tensor stacks R
replicas, each with its own rate. The update rules are exactly those of ``torch.optim.SGD``
(dampening 0, no Nesterov) and ``torch.optim.Adam`` (L2 weight decay added to the gradient),
written with ``torch._foreach_*`` so that one call updates every tensor: no per-replica or
per-layer Python loop runs in the step. ``tests/test_optim.py`` checks both against torch.optim.
"""

from __future__ import annotations

import torch


class _Batched(torch.optim.Optimizer):
    """Shared part: a (R,) learning-rate tensor broadcast to each parameter's shape."""

    def __init__(self, params, lr: torch.Tensor, defaults: dict):
        super().__init__(params, defaults)
        self.lr = lr.detach().clone()
        self._neg_lr = self._lr_views(-1.0)

    def _lr_views(self, scale: float) -> list[torch.Tensor]:
        views = []
        for p in self._params():
            lr = (self.lr * scale).to(device=p.device, dtype=p.dtype)
            views.append(lr.view(-1, *([1] * (p.dim() - 1))))
        return views

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def freeze(self, replica: int) -> None:
        """Stop replica ``replica`` for good: zero its rate, its parameters and its state."""
        self.lr[replica] = 0.0
        self._neg_lr = self._lr_views(-1.0)
        with torch.no_grad():
            for p in self._params():
                p[replica] = 0.0
                for value in self.state[p].values():
                    if isinstance(value, torch.Tensor) and value.dim() > 0:
                        value[replica] = 0.0


class BatchedSGD(_Batched):
    """p <- p - lr_r * buf, buf <- momentum * buf + (g + weight_decay * p)."""

    def __init__(self, params, lr: torch.Tensor, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr, {"momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        group = self.param_groups[0]
        params = self._params()
        grads = [p.grad for p in params]
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        if group["momentum"]:
            bufs = [self.state[p].get("momentum_buffer") for p in params]
            if bufs[0] is None:
                bufs = [g.clone() for g in grads]
                for p, b in zip(params, bufs, strict=True):
                    self.state[p]["momentum_buffer"] = b
            else:
                torch._foreach_mul_(bufs, group["momentum"])
                torch._foreach_add_(bufs, grads)
            grads = bufs
        torch._foreach_addcmul_(params, grads, self._neg_lr)
        return loss


class BatchedAdam(_Batched):
    """Adam (Kingma & Ba) with betas (0.9, 0.999), eps 1e-8, and a per-replica rate."""

    def __init__(
        self,
        params,
        lr: torch.Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, lr, {"betas": betas, "eps": eps, "weight_decay": weight_decay})
        self.t = 0

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
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
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


def make_optimizer(name: str, params, lr: torch.Tensor, momentum: float, weight_decay: float):
    """The batched optimizer called ``name`` in the config (sgd or adam)."""
    if name == "sgd":
        return BatchedSGD(params, lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return BatchedAdam(params, lr, weight_decay=weight_decay)
    raise ValueError(f"train.optimizer must be 'sgd' or 'adam', got {name!r}")
