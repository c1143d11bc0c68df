"""Initialisation schemes as variances, without torch.

The model (``vanishing.training.models``) draws weights with these exact variances, and the
mean-field theory (``vanishing.analysis.theory``) reads them from here, so both always agree on
what an init means.

``sigma_w2`` is the weight variance times fan-in (Var(W_ij) * fan_in), the quantity mean-field
theory works with; ``sigma_b2`` is the bias variance itself (not scaled).
"""

from __future__ import annotations

import math

from vanishing import activations

INITS = ("auto", "pytorch", "xavier", "kaiming", "lecun", "orthogonal")


def resolve_init(init: str, activation: str) -> str:
    """The scheme behind ``auto``: the activation's own (``activations``: Xavier/Glorot for
    sigmoid and tanh, He for relu and gelu)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
    if init != "auto":
        return init
    return activations.get(activation).init


def weight_variance(init: str, fan_in: int, fan_out: int) -> float:
    """Var(W_ij) of a ``fan_out x fan_in`` weight matrix under a concrete scheme.

    - ``pytorch``: nn.Linear's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)): 1 / (3 fan_in).
    - ``xavier``: Glorot normal, gain 1: 2 / (fan_in + fan_out).
    - ``kaiming``: He normal, fan-in mode, gain sqrt(2): 2 / fan_in.
    - ``lecun``: LeCun normal, 1 / fan_in (sigma_w2 = 1 for every activation: with ``pytorch``,
      sigma_w2 = 1/3, the two inits that give every activation the same weight scale).
    - ``orthogonal``: a (semi-)orthogonal matrix with gain 1. Its rows (or columns) have unit norm,
      so the per-entry second moment is 1 / max(fan_in, fan_out).
    """
    if init == "pytorch":
        return 1.0 / (3.0 * fan_in)
    if init == "xavier":
        return 2.0 / (fan_in + fan_out)
    if init == "kaiming":
        return 2.0 / fan_in
    if init == "lecun":
        return 1.0 / fan_in
    if init == "orthogonal":
        return 1.0 / max(fan_in, fan_out)
    raise ValueError(f"no concrete init scheme {init!r}; resolve 'auto' first")


def bias_variance(init: str, fan_in: int) -> float:
    """Var(b_i): PyTorch's default draws U(+-1/sqrt(fan_in)), variance 1 / (3 fan_in); others 0."""
    if init == "pytorch":
        return 1.0 / (3.0 * fan_in)
    if init in ("xavier", "kaiming", "lecun", "orthogonal"):
        return 0.0
    raise ValueError(f"no concrete init scheme {init!r}; resolve 'auto' first")


def sigma_w2(init: str, fan_in: int, fan_out: int) -> float:
    """Var(W) * fan_in, the mean-field weight scale (1/3 for PyTorch's default, 2 for He)."""
    return weight_variance(init, fan_in, fan_out) * fan_in


def uniform_bound(variance: float) -> float:
    """Half-width a of U(-a, a) with the given variance (a^2 / 3 = variance)."""
    return math.sqrt(3.0 * variance)
