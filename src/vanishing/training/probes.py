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

How the weights move (``weight_stats``), per hidden layer's weight matrix W_l, also (R, depth):

- ``weight_update_rel``: ||W_l(t) - W_l(t')|| / ||W_l(t')|| over the probe interval since the
  previous probe t' (Frobenius norms; NaN at step 0);
- ``weight_distance_rel``: ||W_l(t) - W_l(0)|| / ||W_l(0)||, the distance travelled since init;
- ``weight_unchanged``: the fraction of W_l's entries bitwise equal to their initial value. An
  update smaller than half a float32 ulp of a weight (about 2^-24 of it) is rounded away, so a
  layer whose gradient has vanished keeps its weights exactly.

When the probes run (``is_probe_step``): step 0 (before any update), steps 1, 2, 4, 8, ... below
``probe_every`` (where early training moves fastest: batch norm's explosion at init collapses
there), every ``probe_every`` steps, and after the last step.
"""

from __future__ import annotations

import torch

from vanishing import activations
from vanishing.activations import SATURATION_LEVEL
from vanishing.training.models import BatchedMLP, activation_fns, replica_losses

GRADIENTS = ("grad_preact_rms", "grad_weight_norm", "saturation")
WEIGHTS = ("weight_update_rel", "weight_distance_rel", "weight_unchanged")
QUANTITIES = GRADIENTS + WEIGHTS  # the columns of layer_gradients.csv, in this order


def is_probe_step(step: int, every: int) -> bool:
    """Step 0, the powers of two below ``every``, and the multiples of ``every``."""
    return step % every == 0 or (step < every and step & (step - 1) == 0)


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
        # squares in float64: a float32 gradient of 1e-20 has a square below float32's range
        rms = torch.stack([g.double().pow(2).sum(-1).mean(-1).sqrt() for g in g_h], dim=1)
        wnorm = torch.stack([g.double().flatten(1).norm(dim=1) / n for g in g_w], dim=1)
        sat = torch.stack([saturation(net.cfg.activation, a) for a in acts], dim=1)
    return {
        "grad_preact_rms": rms.cpu(),
        "grad_weight_norm": wnorm.cpu(),
        "saturation": sat.cpu(),
    }


@torch.no_grad()
def weight_stats(
    weights: list[torch.Tensor], init: list[torch.Tensor], previous: list[torch.Tensor] | None
) -> dict[str, torch.Tensor]:
    """How far each hidden layer's weights (R, fan_in, fan_out) moved: since ``previous`` (the
    same layers at the last probe; None at step 0) and since ``init``; values (R, depth), CPU."""

    def norm(x):
        return x.flatten(1).norm(dim=1)

    pairs = list(zip(weights, init, strict=True))
    dist = torch.stack([norm(w - w0) / norm(w0) for w, w0 in pairs], 1)
    same = torch.stack([(w == w0).flatten(1).float().mean(1) for w, w0 in pairs], 1)
    if previous is None:
        upd = torch.full_like(dist, float("nan"))
    else:
        pairs = zip(weights, previous, strict=True)
        upd = torch.stack([norm(w - p) / norm(p) for w, p in pairs], 1)
    return {
        "weight_update_rel": upd.cpu(),
        "weight_distance_rel": dist.cpu(),
        "weight_unchanged": same.cpu(),
    }
