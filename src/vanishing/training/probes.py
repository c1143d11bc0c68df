"""Per-layer gradient probes on a fixed batch, for every replica at once.

Quantities, each of shape (R, depth) with layer 1 nearest the input:

- ``grad_preact_rms``: sqrt(mean_i ||dL/dh_l[i]||^2), where h_l[i] is example i's pre-activation
  (the Linear output) and L = sum_i loss_i is the probe batch's summed loss. Without batch norm
  dL/dh_l[i] = d loss_i / dh_l[i], the per-example gradient; with batch norm examples interact and
  it is the total derivative that the training step back-propagates. This is the signal that
  vanishes.
- ``grad_weight_norm``: Frobenius norm of d(mean_i loss_i)/dW_l. It can stay flat across layers
  while the signal above vanishes, because it also scales with the layer's input.
- ``grad_stream_rms``: sqrt(mean_i ||dL/dx_l[i]||^2), x_l the layer's output: in a residual net
  the residual stream after block l (layer 1: the stem's output, the input of block 2), in a
  plain net phi(a_l). Across the blocks of a residual net no branch gain or first-layer factor
  enters its ratios: dL/dx_1 / dL/dx_depth spans exactly blocks 2..depth.
- ``stream_rms``: sqrt(mean over examples and units of x_l^2), the forward size of that
  stream (of the layer's output in a plain net), at every probe.
- ``saturation``: for saturating activations (sigmoid, tanh), the fraction of (example, unit)
  pairs where phi'(a) < 5% of its maximum (a = the activation's input); for rectifying ones
  (relu, gelu), the fraction of units whose input is <= 0 on every probe example (inactive, or
  dead). The rule and the maximum slope come from ``vanishing.activations``; phi' is taken by
  autograd, so any registered activation is measured the same way.
- ``stuck``: one measure for every activation, the fraction of units whose |phi'(a)| is below
  ``STUCK_LEVEL`` (1%) of the activation's maximum slope on every probe example: units that pass
  (almost) no gradient for any input, a dead relu unit and a saturated sigmoid/tanh unit alike
  (``vanishing.activations`` says why 1%). A conv net's unit is one channel at one position.

Forward probes (signal propagation, Poole et al. 2016), also (R, depth), on the same pass:

- ``forward_q``: q_l = mean over units i and probe examples a of h_l[a, i]^2, the second moment
  of the pre-activation (the Linear output, before any norm);
- ``forward_c``: c_l = the mean over every unordered pair of distinct probe examples (a, b),
  a < b (P (P - 1) / 2 pairs for P examples), of q_ab / sqrt(q_aa q_bb), with q_ab the mean over
  units of h_l[a, i] h_l[b, i]: the cosine between two examples' pre-activations. 1 when every
  input maps to the same direction (the ordered phase's forward collapse). Computed from the
  unit vectors u_a = h_a / ||h_a||: sum_{a != b} u_a . u_b = ||sum_a u_a||^2 - P, so it costs
  O(P width), not O(P^2 width). Both in float64. An example whose h_l is exactly 0 (every unit
  dead before it, or a forward signal that underflowed float32) has no direction: the pairs are
  then those of the other examples, and c_l is NaN with fewer than two left.

Batch norm uses the probe batch's own statistics (as in a training step) and leaves the running
statistics untouched. Nothing is accumulated into ``.grad``.

How the weights move (``weight_stats``), per hidden layer's weight matrix W_l, also (R, depth):

- ``weight_update_rel``: ||W_l(t) - W_l(t')|| / ||W_l(t')|| over the probe interval since the
  previous probe t' (Frobenius norms; NaN at step 0);
- ``weight_distance_rel``: ||W_l(t) - W_l(0)|| / ||W_l(0)||, the distance travelled since init;
- ``weight_unchanged``: the fraction of W_l's entries bitwise equal to their initial value. An
  update smaller than half a float32 ulp of a weight (about 2^-24 of it) is rounded away, so a
  layer whose gradient has vanished keeps its weights exactly. Layer 1's weights from input
  features that are constant over the training data (which no gradient reaches) are left out.

When the probes run (``is_probe_step``): step 0 (before any update), steps 1, 2, 4, 8, ... below
``probe_every`` (where early training moves fastest: batch norm's explosion at init collapses
there), every ``probe_every`` steps, and after the last step.
"""

from __future__ import annotations

import functools

import torch

from vanishing import activations
from vanishing.activations import SATURATION_LEVEL, STUCK_LEVEL
from vanishing.training.models import BatchedMLP, activation_fns, replica_losses

GRADIENTS = ("grad_preact_rms", "grad_weight_norm", "saturation", "grad_stream_rms", "stream_rms",
             "stuck")  # fmt: skip
WEIGHTS = ("weight_update_rel", "weight_distance_rel", "weight_unchanged")
FORWARD = ("forward_q", "forward_c")
STATES = ("state_mean", "state_rms")  # recurrent nets' forward state (probes_time); NaN for MLPs
QUANTITIES = GRADIENTS + WEIGHTS + FORWARD + STATES  # the columns of layer_gradients.csv, in order
PROBE_BYTES = 1 << 29  # what one probe pass may keep (see ``probe_chunk``): 512 MiB


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


def unit_states(activation: str, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(saturation, stuck) per replica (R,) of activation inputs a (R, B, units), phi' taken
    once. A unit is stuck when max over the B examples of |phi'(a)| < STUCK_LEVEL x max_slope
    (a NaN input makes that max NaN: not stuck)."""
    spec = activations.get(activation)
    d = slope(activation, a)
    if spec.saturating:
        sat = (d < SATURATION_LEVEL * spec.max_slope).float().mean(dim=(1, 2))
    else:  # a unit is dead when its largest input is <= 0 (a NaN input is not)
        sat = (a.amax(dim=1) <= 0).float().mean(dim=1)
    stuck_units = d.abs_().amax(dim=1) < STUCK_LEVEL * spec.max_slope  # (R, units)
    return sat, stuck_units.float().mean(dim=1)


def saturation(activation: str, a: torch.Tensor) -> torch.Tensor:
    """Saturated or dead fraction per replica (R,) of activation inputs a (R, B, width)."""
    return unit_states(activation, a)[0]


def stuck(activation: str, a: torch.Tensor) -> torch.Tensor:
    """Stuck fraction per replica (R,) of activation inputs a (R, B, units): the units whose
    |phi'(a)| < STUCK_LEVEL x max_slope on all B examples (a NaN input is not stuck)."""
    return unit_states(activation, a)[1]


@torch.no_grad()
def forward_moments(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, c) per replica (R,) of pre-activations h (R, P, width): see the module docstring.
    Squared norms are summed in float64 (a tiny h's squares leave float32's range); the sum of
    unit vectors is one batched product of h with 1 / ||h_a|| (float32, unless 1 / ||h_a||
    itself leaves float32's range)."""
    sq = torch.linalg.vector_norm(h, dim=2, dtype=torch.float64).pow_(2)  # (R, P): ||h_a||^2
    q = sq.mean(dim=1) / h.shape[2]
    live = sq > 0  # examples with a direction
    k = live.sum(dim=1).double()  # (R,)
    inv = torch.where(live, sq.rsqrt(), torch.zeros_like(sq))  # (R, P)
    if bool((inv < 1e38).all()):
        total_u = torch.bmm(inv.to(h.dtype).unsqueeze(1), h).squeeze(1).double()  # (R, width)
    else:
        total_u = torch.bmm(inv.unsqueeze(1), h.double()).squeeze(1)
    total = total_u.pow(2).sum(dim=1)  # ||sum_a u_a||^2 = k + sum_{a != b} u_a . u_b
    c = (total - k) / (k * (k - 1))
    return q, torch.where(k >= 2, c, torch.full_like(c, float("nan")))


def frobenius(g: torch.Tensor) -> torch.Tensor:
    """Frobenius norm per replica (R,) of g (R, ...), float64. Summed in float32 where that is
    exact enough; where the norm is so small (or large) that squares of its entries may leave
    float32's range, summed again in float64, so that a gradient reads 0 only when it
    underflowed float32 itself (and one near overflow reads finite)."""
    dims = tuple(range(1, g.dim()))
    norm = torch.linalg.vector_norm(g, dim=dims).double()
    if bool(((norm < 1e-15) | (norm > 1e15)).any()):
        norm = torch.linalg.vector_norm(g, dim=dims, dtype=torch.float64)
    return norm


def probe_chunk(net: BatchedMLP, probe_size: int, max_bytes: int = PROBE_BYTES) -> int:
    """How many replicas one pass of the probe takes: what it keeps per replica and layer (the
    tensors autograd saves, at most three (probe_size, width) ones, and a gradient in flight)
    times the replicas stays under ``max_bytes``; at least 1."""
    units = net.units(probe_size) if hasattr(net, "units") else net.cfg.width * net.cfg.depth
    per_replica = 4 * probe_size * units * 4
    return max(1, min(net.n_replicas, max_bytes // per_replica))


def measure(
    net: BatchedMLP, x: torch.Tensor, y: torch.Tensor, max_bytes: int = PROBE_BYTES
) -> dict[str, torch.Tensor]:
    """Probe every replica of ``net`` on x (R, P, input_dim), y (R, P): values (R, depth), CPU.
    Replicas never interact, so they are probed ``probe_chunk`` at a time: the same values,
    in memory bounded by ``max_bytes`` whatever the depth."""
    R, P = y.shape
    chunk = probe_chunk(net, P, max_bytes)
    was_training = net.training
    net.train()
    try:
        parts = [
            _measure(net, x[r : r + chunk], y[r : r + chunk], slice(r, r + chunk))
            for r in range(0, R, chunk)
        ]
    finally:
        net.train(was_training)
    return {q: torch.cat([p[q] for p in parts]).cpu() for q in GRADIENTS + FORWARD}


def _measure(net: BatchedMLP, x, y, replicas: slice) -> dict[str, torch.Tensor]:
    """``measure`` for some replicas of ``net`` (x, y hold those only). Each layer is reduced
    as it is made (saturation) and as the backward pass reaches it (a hook on h_l), so no
    layer's activations or gradients are kept beyond what autograd itself saves."""
    depth, n = net.cfg.depth, x.shape[1]
    layers = net.layers(replicas)
    rms: list[torch.Tensor | None] = [None] * depth
    sat: list[torch.Tensor | None] = [None] * depth
    stk: list[torch.Tensor | None] = [None] * depth
    fq: list[torch.Tensor | None] = [None] * depth
    fc: list[torch.Tensor | None] = [None] * depth
    stream_grad: list[torch.Tensor | None] = [None] * depth
    stream: list[torch.Tensor | None] = [None] * depth

    def reduce_grad(out: list, layer: int, g: torch.Tensor) -> None:
        out[layer] = frobenius(g) / n**0.5  # sqrt(mean_i ||dL/dh_l[i]||^2), likewise x_l

    def reduce_layer(layer: int, h: torch.Tensor, a: torch.Tensor | None) -> None:
        h.register_hook(functools.partial(reduce_grad, rms, layer))
        with torch.no_grad():  # a is None where no activation follows (a conv net's classifier)
            if a is None:
                sat[layer] = torch.full(h.shape[:1], float("nan"), device=h.device)
                stk[layer] = sat[layer]
            else:
                sat[layer], stk[layer] = unit_states(net.cfg.activation, a)
            fq[layer], fc[layer] = forward_moments(h.flatten(2))  # a conv h: all its units

    def reduce_stream(layer: int, x_l: torch.Tensor) -> None:
        x_l.register_hook(functools.partial(reduce_grad, stream_grad, layer))
        stream[layer] = frobenius(x_l.detach()) / x_l[0].numel() ** 0.5

    with torch.enable_grad():
        # the MLPs report their stream (x_l); a conv net's probes are its layers' h_l alone
        extra = {"stream": reduce_stream} if isinstance(net, BatchedMLP) else {}
        logits, _, _ = net(x, update_stats=False, keep=reduce_layer, layers=layers, **extra)
        total = replica_losses(logits, y).sum()
        g_w = torch.autograd.grad(total, [layer[0] for layer in layers[:depth]])
    with torch.no_grad():
        return {
            "grad_preact_rms": torch.stack(rms, 1),
            # ||d(mean_i loss_i) / dW_l||_F
            "grad_weight_norm": torch.stack([frobenius(g) for g in g_w], 1) / n,
            "saturation": torch.stack(sat, 1),
            "grad_stream_rms": _stack_or_nan(stream_grad, len(x)),
            "stream_rms": _stack_or_nan(stream, len(x)),
            "stuck": torch.stack(stk, 1),
            "forward_q": torch.stack(fq, 1),
            "forward_c": torch.stack(fc, 1),
        }


def _stack_or_nan(values: list[torch.Tensor | None], replicas: int) -> torch.Tensor:
    """(R, layers) from per-layer (R,) values; NaN where the net did not report them."""
    if any(v is None for v in values):
        return torch.full((replicas, len(values)), float("nan"), dtype=torch.float64)
    return torch.stack(values, 1)


@torch.no_grad()
def weight_stats(
    weights: list[torch.Tensor],
    init: list[torch.Tensor],
    previous: list[torch.Tensor] | None,
    live_inputs: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """How far each hidden layer's weights (R, fan_in, fan_out) moved: since ``previous`` (the
    same layers at the last probe; None at step 0) and since ``init``; values (R, depth), CPU.
    ``live_inputs`` (fan_in of layer 1, bool): the input features that vary over the training
    data; layer 1's weights from the others (a pixel that is 0 in every image) receive no
    gradient whatever the depth, so they are left out of its ``weight_unchanged``.
    (One layer at a time, all of its statistics while its matrices are in cache.)"""

    def norm(x):  # (R,): Frobenius norm of each replica's matrix (or conv kernel)
        return torch.linalg.vector_norm(x.flatten(1), dim=1)

    dist, same, upd = [], [], []
    for layer, (w, w0) in enumerate(zip(weights, init, strict=True)):
        d = w - w0
        dist.append(norm(d) / norm(w0))
        # entries with d != 0, i.e. w != w0 (the initial weights are finite), counted by
        # |sign(d)| in float: exact, and several times faster than a boolean count here
        if layer == 0 and live_inputs is not None and bool(live_inputs.any()):
            d = d[:, live_inputs]  # the rows of W_1 that can receive a gradient
        same.append(1 - torch.sign(d).abs_().flatten(1).sum(dim=1) / d[0].numel())
        if previous is not None:
            p = previous[layer]
            upd.append(norm(w - p) / norm(p))
    dist = torch.stack(dist, 1)
    upd = torch.stack(upd, 1) if previous is not None else torch.full_like(dist, float("nan"))
    return {
        "weight_update_rel": upd.cpu(),
        "weight_distance_rel": dist.cpu(),
        "weight_unchanged": torch.stack(same, 1).cpu(),
    }
