"""Per-layer gradient probes on a fixed batch, for every replica at once.

Quantities, each of shape (R, depth) with layer 1 nearest the input:

- ``grad_preact_rms``: sqrt(mean_i ||dL/dh_l[i]||^2), where h_l[i] is example i's pre-activation
  (the Linear output) and L = sum_i loss_i is the probe batch's summed loss. Without batch norm
  dL/dh_l[i] = d loss_i / dh_l[i], the per-example gradient; with batch norm examples interact and
  it is the total derivative that the training step back-propagates. This is the signal that
  vanishes.
- ``grad_weight_norm``: Frobenius norm of d(mean_i loss_i)/dW_l. It can stay flat across layers
  while the signal above vanishes, because it also scales with the layer's input.
- ``saturation``: for saturating activations (sigmoid, tanh), the fraction of (example, unit)
  pairs where phi'(a) < 5% of its maximum (a = the activation's input); for rectifying ones
  (relu, gelu), the fraction of units whose input is <= 0 on every probe example (inactive, or
  dead). The rule and the maximum slope come from ``vanishing.activations``; phi' is taken by
  autograd, so any registered activation is measured the same way.

Batch norm uses the probe batch's own statistics (as in a training step) and leaves the running
statistics untouched. Nothing is accumulated into ``.grad``.
"""

from __future__ import annotations

import torch

from vanishing import activations
from vanishing.activations import SATURATION_LEVEL
from vanishing.training.models import BatchedMLP, activation_fns, replica_losses

QUANTITIES = ("grad_preact_rms", "grad_weight_norm", "saturation")


def slope(activation: str, a: torch.Tensor) -> torch.Tensor:
    """phi'(a), elementwise, by autograd (the activation is elementwise)."""
    phi, _ = activation_fns(activation)
    with torch.enable_grad():
        leaf = a.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(phi(leaf).sum(), leaf)
    return grad


def saturation(activation: str, a: torch.Tensor) -> torch.Tensor:
    """Saturated or dead fraction per replica (R,) of activation inputs a (R, B, width)."""
    spec = activations.get(activation)
    if spec.saturating:
        return (slope(activation, a) < SATURATION_LEVEL * spec.max_slope).float().mean(dim=(1, 2))
    return (a <= 0).all(dim=1).float().mean(dim=1)


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
