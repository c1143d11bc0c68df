"""Initialisation schemes as variances, without torch.

The model (``vanishing.training.models``) draws weights with these exact variances, and the
mean-field theory (``vanishing.analysis.theory``) reads them from here, so both always agree on
what an init means.

``sigma_w2`` is the weight variance times fan-in (Var(W_ij) * fan_in), the quantity mean-field
theory works with; ``sigma_b2`` is the bias variance itself (not scaled). For a
(semi-)orthogonal matrix, whose entries are not independent, Var(W_ij) means the mean of W_ij^2
over its entries (they have mean 0): the same quantity, so that sum_j W_ij^2 x_j^2, the variance
mean-field theory gives unit i of h = W x, reads sigma_w2 * mean_j x_j^2 for either kind.

The settings ``sigma_w2`` and ``sigma_b2`` override a scheme's scale (``layer_scale``): a number
is used for every layer, input and classifier included; ``auto`` keeps the scheme's; for
``sigma_w2`` a named point is solved for the activation at the hidden layers' sigma_b2
(``resolve_sigma_w2``): ``critical`` (mean-field chi = 1) or ``chi<x>`` (chi = x, e.g. chi0.5).
"""

from __future__ import annotations

import math

from vanishing import activations, meanfield

AUTO = "auto"

INITS = (
    "auto",
    "pytorch",
    "xavier",
    "kaiming",
    "lecun",
    "orthogonal",
    "identity",
    "delta_orthogonal",
)
CONV_INITS = ("delta_orthogonal",)  # defined for convolutions only (``architectures``)


def resolve_init(init: str, activation: str) -> str:
    """The scheme behind ``auto``: the activation's own (``activations``: Xavier/Glorot for
    sigmoid and tanh, He for relu and gelu)."""
    if init not in INITS:
        raise ValueError(f"init must be one of {list(INITS)}, got {init!r}")
    if init != "auto":
        return init
    return activations.get(activation).init


def weight_variance(init: str, fan_in: int, fan_out: int, sw2: float | str = AUTO) -> float:
    """Var(W_ij) of a ``fan_out x fan_in`` weight matrix under a concrete scheme; ``sw2``, a
    number, overrides it with sw2 / fan_in (for every scheme, ``orthogonal`` included).

    - ``pytorch``: nn.Linear's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)): 1 / (3 fan_in).
    - ``xavier``: Glorot normal, gain 1: 2 / (fan_in + fan_out).
    - ``kaiming``: He normal, fan-in mode, gain sqrt(2): 2 / fan_in.
    - ``lecun``: LeCun normal, 1 / fan_in (sigma_w2 = 1 for every activation: with ``pytorch``,
      sigma_w2 = 1/3, the two inits that give every activation the same weight scale).
    - ``orthogonal``: a (semi-)orthogonal matrix with gain 1. Its rows (or columns) have unit norm,
      so the per-entry second moment is 1 / max(fan_in, fan_out).
    - ``identity``: the identity (IRNN's recurrent matrix; recurrent nets only), the same.
    - ``delta_orthogonal`` (Xiao et al. 2018, conv kernels only): zero except the centre tap,
      an orthogonal (c_out, c_in) matrix with gain 1; with fan_in = 9 c_in and fan_out = 9 c_out
      the per-entry second moment over the whole kernel is again 1 / max(fan_in, fan_out).
    """
    if sw2 != AUTO:
        if init not in INITS or init == AUTO:
            raise ValueError(f"no concrete init scheme {init!r}; resolve 'auto' first")
        return float(sw2) / fan_in
    if init == "pytorch":
        return 1.0 / (3.0 * fan_in)
    if init == "xavier":
        return 2.0 / (fan_in + fan_out)
    if init == "kaiming":
        return 2.0 / fan_in
    if init == "lecun":
        return 1.0 / fan_in
    if init in ("orthogonal", "identity", "delta_orthogonal"):  # identity: IRNN's square W
        return 1.0 / max(fan_in, fan_out)
    raise ValueError(f"no concrete init scheme {init!r}; resolve 'auto' first")


def conv_weight_variance(init: str, c_in: int, c_out: int, k: int = 3) -> float:
    """Var(W) over a (c_out, c_in, k, k) conv kernel under a concrete scheme: fan_in = k^2 c_in
    and fan_out = k^2 c_out as PyTorch counts them, except the orthogonal ones: ``orthogonal``
    makes the kernel flattened to (c_out, k^2 c_in) (semi-)orthogonal, 1 / max(k^2 c_in, c_out);
    ``delta_orthogonal`` only its centre tap, 1 / (k^2 max(c_in, c_out))."""
    if init == "orthogonal":
        return 1.0 / max(k * k * c_in, c_out)
    return weight_variance(init, k * k * c_in, k * k * c_out)


def bias_variance(init: str, fan_in: int, sb2: float | str = AUTO) -> float:
    """Var(b_i): PyTorch's default draws U(+-1/sqrt(fan_in)), variance 1 / (3 fan_in); others 0.
    ``sb2``, a number, overrides it."""
    if sb2 != AUTO:
        if init not in INITS or init == AUTO:
            raise ValueError(f"no concrete init scheme {init!r}; resolve 'auto' first")
        return float(sb2)
    if init == "pytorch":
        return 1.0 / (3.0 * fan_in)
    if init in ("xavier", "kaiming", "lecun", "orthogonal", "identity", "delta_orthogonal"):
        return 0.0
    raise ValueError(f"no concrete init scheme {init!r}; resolve 'auto' first")


def sigma_w2(init: str, fan_in: int, fan_out: int, sw2: float | str = AUTO) -> float:
    """Var(W) * fan_in, the mean-field weight scale (1/3 for PyTorch's default, 2 for He);
    ``sw2`` (a number) where it overrides the scheme."""
    return weight_variance(init, fan_in, fan_out, sw2) * fan_in


def is_named(value) -> bool:
    """Whether a sigma_w2 setting names a point (``critical``, ``chi0.5``) instead of a number."""
    return isinstance(value, str) and value != AUTO


def resolve_sigma_w2(value, activation: str, sb2: float) -> float | str:
    """The number behind a sigma_w2 setting: a number as it is, ``auto`` as it is (the scheme's
    own, which differs by layer), a named point solved for ``activation`` at the bias variance
    ``sb2`` (``meanfield.solve_sigma_w2``; ValueError if the activation has none there)."""
    if not is_named(value):
        return value if value == AUTO else float(value)
    return meanfield.solve_sigma_w2(activation, float(sb2), meanfield.parse_target(value))


def hidden_scales(init: str, activation: str, width: int, sw2, sb2) -> tuple[float, float]:
    """(sigma_w2, sigma_b2) of the hidden layers (width -> width) as drawn: the settings
    resolved, else the scheme's (``init`` may be ``auto``)."""
    scheme = resolve_init(init, activation)
    b = bias_variance(scheme, width, sb2)
    w = resolve_sigma_w2(sw2, activation, b)
    return sigma_w2(scheme, width, width, w), b


def uniform_bound(variance: float) -> float:
    """Half-width a of U(-a, a) with the given variance (a^2 / 3 = variance)."""
    return math.sqrt(3.0 * variance)
