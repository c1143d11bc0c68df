"""Dynamical isometry at initialisation: the spectrum of the input-output Jacobian.

J(x) = d x_depth / d x_0 (width x input_dim) is the Jacobian of the last hidden layer's output
with respect to the network's input at input x (Pennington, Schoenholz & Ganguli 2017,
"Resurrecting the sigmoid in deep learning through dynamical isometry"). Its squared singular
values sigma^2 are how much each input direction is stretched on the way up (and, by symmetry,
how much each output direction of the gradient is stretched on the way down): a mean far from 1
is vanishing or exploding; a wide spread (log10 max / min) means a few directions carry all the
signal even where the mean is 1. Gaussian weights at criticality still spread; orthogonal ones
in a linear(ised) net do not.

Per replica, ``N_INPUTS`` = 4 probe examples: J depends on the input only through phi'(h_l) at
that input, and 4 inputs give 4 * min(width, input_dim) squared singular values (256 for the
default width and the digits), enough for a mean, a spread and a standard deviation, at the cost
of one probe pass (see below). Summaries pool the values of the 4 inputs:

- ``jacobian_sv2_mean``, ``jacobian_sv2_std`` (population sd) of the squared singular values;
- ``jacobian_sv2_log10_spread``: log10(max / min) of them. J is computed in float32, so singular
  values below 2^-23 of the largest are not resolved: where the smallest is below that (or is
  0), the spread is censored at the bound log10(2^46) = 13.85 and ``jacobian_sv2_censored`` is
  true (the spread is then at least that). An all-zero J (the signal underflowed) has mean 0,
  sd 0 and a NaN spread, censored as well; a J with an infinite or NaN entry (the forward
  signal overflowed float32, a chaotic or exploding net) has mean inf (read: above float32's
  range), NaN sd and spread, censored.

How: every input is repeated ``width`` times; copy i back-propagates the unit vector e_i from
x_depth, so one forward and one backward pass of a batch of 4 * width rows give every row of
every J (rows never interact without batch norm). The net's own forward runs, with its
classifier replaced by the identity, so whatever block it builds is differentiated as it is.
NaN with batch norm: there an example's output depends on the whole batch.
"""

from __future__ import annotations

import math

import torch

from vanishing.training.models import BatchedMLP
from vanishing.training.probes import PROBE_BYTES, probe_chunk

N_INPUTS = 4
RESOLVED = 2.0**-46  # (2^-23)^2: the smallest sigma^2 / max sigma^2 that float32's J resolves
SPREAD_BOUND = -math.log10(RESOLVED)
COLUMNS = (
    "jacobian_sv2_mean",
    "jacobian_sv2_std",
    "jacobian_sv2_log10_spread",
    "jacobian_sv2_censored",
)


def jacobians(net: BatchedMLP, x: torch.Tensor, max_bytes: int = PROBE_BYTES) -> torch.Tensor:
    """J (R, n, width, input_dim) of every replica at inputs x (R, n, input_dim), float32."""
    R, n, d = x.shape
    width = net.cfg.width
    chunk = probe_chunk(net, n * width, max_bytes)
    was_training = net.training
    net.train()
    try:
        out = [_jacobians(net, x[r : r + chunk], slice(r, r + chunk)) for r in range(0, R, chunk)]
    finally:
        net.train(was_training)
    return torch.cat(out).view(R, n, width, d)


def _jacobians(net: BatchedMLP, x: torch.Tensor, replicas: slice) -> torch.Tensor:
    r, n, d = x.shape
    width = net.cfg.width
    *hidden, top = net.layers(replicas)
    eye = torch.eye(width, dtype=x.dtype, device=x.device).expand(r, -1, -1)
    identity = (eye, torch.zeros(r, width, dtype=x.dtype, device=x.device), *top[2:])
    rows = x.repeat_interleave(width, dim=1).detach().requires_grad_(True)  # (r, n*width, d)
    pick = torch.eye(width, dtype=x.dtype, device=x.device).repeat(n, 1)  # (n*width, width)
    with torch.enable_grad():
        out, _, _ = net(rows, update_stats=False, layers=[*hidden, identity])  # (r, n*width, w)
        (grad,) = torch.autograd.grad((out * pick).sum(), rows)
    return grad.detach()  # (r, n*width, d): row i of J for each copy i


@torch.no_grad()
def spectrum_stats(jac: torch.Tensor) -> dict[str, torch.Tensor]:
    """The summaries (R,) of ``COLUMNS`` from Jacobians (R, n, width, input_dim)."""
    jac = jac.double()
    over = ~torch.isfinite(jac).flatten(1).all(dim=1)  # (R,): the signal overflowed float32
    jac = torch.where(over.view(-1, 1, 1, 1), torch.zeros_like(jac), jac)
    sv2 = torch.linalg.svdvals(jac).pow(2).flatten(1)  # (R, n * min(width, d))
    top = sv2.amax(dim=1)
    low = sv2.amin(dim=1)
    censored = (low < top * RESOLVED) | (top == 0) | over
    spread = torch.log10(top / low)
    spread = torch.where(censored, torch.full_like(spread, SPREAD_BOUND), spread)
    nan, inf = torch.full_like(spread, float("nan")), torch.full_like(spread, float("inf"))
    spread = torch.where((top == 0) | over, nan, spread)
    return {
        "jacobian_sv2_mean": torch.where(over, inf, sv2.mean(dim=1)),
        "jacobian_sv2_std": torch.where(over, nan, sv2.std(dim=1, correction=0)),
        "jacobian_sv2_log10_spread": spread,
        "jacobian_sv2_censored": censored,
    }


def measure_isometry(net: BatchedMLP, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``spectrum_stats`` of each replica at its first ``N_INPUTS`` probe inputs x (R, P, d);
    NaN (censored false) with batch norm."""
    R = x.shape[0]
    if net.cfg.norm == "batch":
        nan = torch.full((R,), float("nan"), dtype=torch.float64)
        return {**{c: nan.clone() for c in COLUMNS[:3]}, COLUMNS[3]: torch.zeros(R, dtype=bool)}
    stats = spectrum_stats(jacobians(net, x[:, :N_INPUTS]))
    return {k: v.cpu() for k, v in stats.items()}
