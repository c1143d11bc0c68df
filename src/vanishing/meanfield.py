"""Mean-field signal propagation at initialisation, without torch: the maps, chi, the depth scale
xi_c, and the sigma_w2 that puts an activation at a chosen chi (Poole et al. 2016; Schoenholz
et al. 2017, "Deep information propagation").

For a plain net h_l = W_l x_{l-1} + b_l, x_l = phi(h_l), with Var(W) * fan_in = sw2 and
Var(b) = sb2, every unit of h_l is Gaussian in the wide limit, with variance q_l:

    q_{l+1} = sw2 E[phi(h)^2] + sb2,              h ~ N(0, q_l)     (the variance map)
    chi     = sw2 E[phi'(h)^2],                   h ~ N(0, q*)      (per layer, squared norms)

q* is the depth limit of q_l. chi < 1 is the ordered phase (gradients vanish toward the input,
two inputs' representations become one), chi > 1 the chaotic phase (gradients grow toward the
input), chi = 1 the critical point. The correlation c_l between two inputs' pre-activations
follows the c-map, whose slope at its fixed point c* sets the depth scale xi_c over which
signals (and, Schoenholz et al. argue, trainability) survive: a net trains up to about 6 xi_c.

This module sits at the package's top so that the model (``vanishing.training``, which may not
import ``vanishing.analysis``) and the theory (``vanishing.analysis.theory``) use the same
quadrature and the same solver.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy import optimize

from vanishing import activations

N_QUAD = 96  # Gauss-Hermite nodes: exact for polynomials of degree < 192
N_QUAD_2D = 48  # per dimension, for the two-input (c-map) expectations
CRITICAL = "critical"  # sigma_w2 where chi = 1
CHI_PREFIX = "chi"  # "chi0.5": the sigma_w2 where chi = 0.5
SOLVE_RANGE = (1e-2, 1e3)  # where the solver looks for sigma_w2
ZERO_Q = 1e-3  # q_l below this after the iterations: the map is on its way to q* = 0


@functools.cache
def _nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes (n,) and weights (n,) for the standard normal density."""
    x, w = hermegauss(n)  # weight exp(-x^2 / 2), total mass sqrt(2 pi)
    return x, w / np.sqrt(2.0 * np.pi)


def gauss_expect(f, q, n: int = N_QUAD):
    """E[f(h)] for h ~ N(0, q) by n-point Gauss-Hermite quadrature (f maps arrays to arrays).

    ``q`` may be an array: the result has its shape (a float for a scalar q). Exact for
    polynomials of degree < 2n.
    """
    x, w = _nodes(n)
    q = np.asarray(q, dtype=float)
    out = f(np.sqrt(q)[..., None] * x) @ w
    return float(out) if out.ndim == 0 else out


def moments(activation: str, q):
    """(E[phi(h)], E[phi(h)^2], E[phi'(h)^2]) for h ~ N(0, q); q a float or an array.

    phi and phi' come from ``vanishing.activations``. An activation with closed forms there
    uses them (ReLU: sqrt(q / 2 pi), q / 2, 1 / 2; quadrature converges only as 1/n across its
    kink at 0); the smooth ones use ``gauss_expect``.
    """
    spec = activations.get(activation)
    if spec.moments is not None:
        return spec.moments(q)
    phi, dphi = spec.phi, spec.dphi
    return (
        gauss_expect(phi, q),
        gauss_expect(lambda h: phi(h) ** 2, q),
        gauss_expect(lambda h: dphi(h) ** 2, q),
    )


def variance_map(activation: str, q: float, sw2: float, sb2: float) -> float:
    """Next layer's pre-activation variance q' = sw2 * E[phi(h)^2] + sb2, h ~ N(0, q)."""
    return sw2 * moments(activation, q)[1] + sb2


def chi(activation: str, q: float, sw2: float) -> float:
    """Plain-net factor on squared gradient norms per layer: sw2 E[phi'(h)^2], h ~ N(0, q)."""
    return sw2 * moments(activation, q)[2]


def fixed_point(activation: str, sw2: float, sb2: float, q0: float = 1.0, steps: int = 500):
    """q* = variance_map(q*), by iterating the map from q0 (the depth limit of q_l)."""
    q = q0
    for _ in range(steps):
        q = variance_map(activation, q, sw2, sb2)
    return q


@functools.cache
def q_star(activation: str, sw2: float, sb2: float) -> float:
    """The fixed point q* a deep net reaches from q_0 = 1 (standardised inputs), by iterating
    the variance map until it settles (at most 5,000 layers). Where phi(0) = 0 and sb2 = 0,
    q = 0 is a fixed point that the map approaches only as a power law at criticality
    (tanh at sw2 = 1: q_l ~ 3 / (2 l)); a map still below ``ZERO_Q`` after the iterations
    is taken to reach it, and q* = 0 exactly. inf where q_l grows without bound."""
    spec = activations.get(activation)
    q = 1.0
    with np.errstate(all="ignore"):
        for _ in range(5000):
            new = variance_map(activation, q, sw2, sb2)
            if not np.isfinite(new) or new > 1e300:
                return math.inf
            if abs(new - q) <= 1e-13 * q or new < 1e-300:
                return float(new) if new >= 1e-300 else 0.0
            q = new
    if sb2 == 0 and float(spec.phi(np.zeros(1))[0]) == 0 and q < ZERO_Q:
        return 0.0
    return float(q)


def chi_at_fixed_point(activation: str, sw2: float, sb2: float) -> float:
    """chi = sw2 E[phi'(h)^2] at h ~ N(0, q*): the per-layer factor deep in the net. At q* = 0
    it is sw2 phi'(0)^2; with q* infinite, the limit of large q (ReLU: sw2 / 2)."""
    q = q_star(activation, sw2, sb2)
    if math.isinf(q):
        spec = activations.get(activation)
        if spec.moments is None:
            return math.inf
        return chi(activation, 1.0, sw2)  # closed forms that do not depend on q (ReLU)
    return chi(activation, q, sw2)


def parse_target(value: str) -> float:
    """The chi a named sigma_w2 asks for: ``critical`` = 1, ``chi0.5`` = 0.5."""
    if value == CRITICAL:
        return 1.0
    if isinstance(value, str) and value.startswith(CHI_PREFIX):
        try:
            target = float(value[len(CHI_PREFIX) :])
        except ValueError:
            target = math.nan
        if target > 0:
            return target
    raise ValueError(
        f"a named sigma_w2 is {CRITICAL!r} or {CHI_PREFIX}<number> (e.g. chi0.5), got {value!r}"
    )


@functools.cache
def solve_sigma_w2(activation: str, sb2: float, target: float = 1.0) -> float:
    """The sigma_w2 at which ``chi_at_fixed_point`` equals ``target`` for ``activation`` at bias
    variance ``sb2``: the smallest such value in ``SOLVE_RANGE`` (a scan on a log grid, then
    Brent's method on the first crossing). ValueError, naming the activation, sb2 and the chi
    the range reaches, if there is none."""
    lo, hi = SOLVE_RANGE
    grid = np.geomspace(lo, hi, 61)
    gap = np.array([chi_at_fixed_point(activation, s, sb2) - target for s in grid])
    cross = np.flatnonzero((gap[:-1] < 0) & (gap[1:] >= 0) | (gap[:-1] > 0) & (gap[1:] <= 0))
    if gap[0] == 0:
        return float(grid[0])
    if len(cross) == 0:
        reach = (np.nanmin(gap) + target, np.nanmax(gap) + target)
        raise ValueError(
            f"{activation} has no sigma_w2 in [{lo:g}, {hi:g}] with chi = {target:g} at "
            f"sigma_b2 = {sb2:g}: chi there spans {reach[0]:.3g} to {reach[1]:.3g}"
        )
    i = int(cross[0])
    f = functools.partial(_chi_gap, activation, sb2, target)
    root = float(optimize.brentq(f, grid[i], grid[i + 1], xtol=1e-12, rtol=1e-10))
    if not abs(f(root)) < 1e-6:  # a jump (q* leaves 0 or grows without bound), not a crossing
        below, above = (chi_at_fixed_point(activation, root * k, sb2) for k in (1 - 1e-6, 1 + 1e-6))
        raise ValueError(
            f"{activation} has no sigma_w2 with chi = {target:g} at sigma_b2 = {sb2:g}: chi jumps "
            f"from {below:.3g} to {above:.3g} at sigma_w2 = {root:.4g} (q* leaves its branch)"
        )
    return root


def _chi_gap(activation: str, sb2: float, target: float, sw2: float) -> float:
    return chi_at_fixed_point(activation, sw2, sb2) - target


def _pair_expect(f, g, q: float, c: float, n: int = N_QUAD_2D) -> float:
    """E[f(u1) g(u2)] for (u1, u2) Gaussian with variances q and correlation c."""
    x, w = _nodes(n)
    z1, z2 = x[:, None], x[None, :]
    s = math.sqrt(max(q, 0.0))
    u1 = s * z1
    u2 = s * (c * z1 + math.sqrt(max(1.0 - c * c, 0.0)) * z2)
    return float(w @ (f(u1) * g(u2)) @ w)


def correlation_map(activation: str, c: float, q: float, sw2: float, sb2: float) -> float:
    """c' = (sw2 E[phi(u1) phi(u2)] + sb2) / q for two inputs at variance q, correlation c."""
    phi = activations.get(activation).phi
    return (sw2 * _pair_expect(phi, phi, q, c) + sb2) / q


def c_star(activation: str, sw2: float, sb2: float, steps: int = 2000) -> float:
    """The stable fixed point of the c-map at q*: 1 in the ordered phase (chi <= 1); below 1 in
    the chaotic phase, found by iterating the map from c = 0."""
    if chi_at_fixed_point(activation, sw2, sb2) <= 1.0:
        return 1.0
    q = q_star(activation, sw2, sb2)
    c = 0.0
    for _ in range(steps):
        new = correlation_map(activation, c, q, sw2, sb2)
        if abs(new - c) < 1e-12:
            return float(new)
        c = new
    return float(c)


def xi_c(activation: str, sw2: float, sb2: float) -> float:
    """The correlation depth scale xi_c = -1 / ln(chi_c), chi_c the c-map's slope at c*:
    sw2 E[phi'(u1) phi'(u2)] at (q*, c*), which is chi itself at c* = 1 (the ordered phase).
    Schoenholz et al.'s trainable depth is about 6 xi_c; inf at the critical point."""
    chi1 = chi_at_fixed_point(activation, sw2, sb2)
    if chi1 <= 1.0:
        slope = chi1
    else:
        spec = activations.get(activation)
        q, c = q_star(activation, sw2, sb2), c_star(activation, sw2, sb2)
        if math.isinf(q):
            return math.nan
        slope = sw2 * _pair_expect(spec.dphi, spec.dphi, q, c)
    if slope <= 0 or not np.isfinite(slope):
        return math.nan
    return math.inf if slope == 1.0 else -1.0 / math.log(slope)
