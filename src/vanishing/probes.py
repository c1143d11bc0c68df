"""Per-layer gradient probes on a fixed batch, for every replica at once.

Quantities, each of shape (R, depth) with layer 1 nearest the input:

- ``grad_preact_rms``: sqrt(mean_i ||dL/dh_l[i]||^2), where h_l[i] is example i's pre-activation
  (the Linear output) and L = sum_i loss_i is the probe batch's summed loss. Without batch norm
  dL/dh_l[i] = d loss_i / dh_l[i], the per-example gradient; with batch norm examples interact and
  it is the total derivative that the training step back-propagates. This is the signal that
  vanishes.
- ``grad_weight_norm``: Frobenius norm of d(mean_i loss_i)/dW_l. It can stay flat across layers
  while the signal above vanishes, because it also scales with the layer's input.
- ``saturation``: for sigmoid and tanh, the fraction of (example, unit) pairs where phi'(a) < 5% of
  its maximum (a = the activation's input); for relu and gelu, the fraction of units whose input is
  <= 0 on every probe example (inactive, or dead).

Batch norm uses the probe batch's own statistics (as in a training step) and leaves the running
statistics untouched. Nothing is accumulated into ``.grad``.
"""

from __future__ import annotations

import torch

from vanishing.models import BatchedMLP, replica_losses

QUANTITIES = ("grad_preact_rms", "grad_weight_norm", "saturation")
SATURATION_LEVEL = 0.05


def saturation(activation: str, a: torch.Tensor) -> torch.Tensor:
    """Saturated or inactive fraction per replica (R,) of activation inputs a (R, B, width)."""
    if activation == "sigmoid":
        s = torch.sigmoid(a)
        return (s * (1 - s) < SATURATION_LEVEL * 0.25).float().mean(dim=(1, 2))
    if activation == "tanh":
        return (1 - torch.tanh(a) ** 2 < SATURATION_LEVEL).float().mean(dim=(1, 2))
    if activation in ("relu", "gelu"):
        return (a <= 0).all(dim=1).float().mean(dim=1)
    raise ValueError(f"unknown activation {activation!r}")


def measure(net: BatchedMLP, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Probe every replica of ``net`` on x (R, P, input_dim), y (R, P): values (R, depth), CPU."""
    was_training = net.training
    net.train()
    with torch.enable_grad():
        logits, preacts, acts = net(x, update_stats=False, keep=True)
        total = replica_losses(logits, y).sum()
        weights = list(net.weights[: net.cfg.depth])
        grads = torch.autograd.grad(total, preacts + weights)
    net.train(was_training)
    n = x.shape[1]
    g_h, g_w = grads[: len(preacts)], grads[len(preacts) :]
    with torch.no_grad():
        rms = torch.stack([g.pow(2).sum(-1).mean(-1).sqrt() for g in g_h], dim=1)
        wnorm = torch.stack([g.flatten(1).norm(dim=1) / n for g in g_w], dim=1)
        sat = torch.stack([saturation(net.cfg.activation, a) for a in acts], dim=1)
    return {
        "grad_preact_rms": rms.cpu(),
        "grad_weight_norm": wnorm.cpu(),
        "saturation": sat.cpu(),
    }
