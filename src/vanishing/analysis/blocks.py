"""Mean-field maps of the residual blocks (``training/models.py``) at initialisation, without
torch: per layer, the factor by which the squared gradient on the stream grows from x_l to
x_{l-1}, and what the layer's pre-activation h_l receives of it.

With G_l = E||dL/dx_l||^2 (x_l the stream after block l), every block gives

    G_{l-1} = G_l * step_l,        E||dL/dh_l||^2 = G_l * own_l

and ``theory.predicted_profile`` turns the two (depth, n) arrays (n probe inputs) into a
profile. Layer 1 (the stem) is a plain layer: step 0 is unused, own_1 = k_1 a_1 as there.

- ``pre`` (x_l = x_{l-1} + alpha h_l, h_l = phi(norm(x_{l-1})) W_l + b_l). The branch ends in
  W_l, zero-mean and independent of x_{l-1} at init, so E[g . W^T D g] = 0 and the gradient
  independence assumption (Schoenholz et al. 2017; for residual nets Yang & Schoenholz 2017)
  holds at leading order: step_l = 1 + alpha^2 sigma_w2 k_l a_l, own_l = alpha^2, with a_l =
  E[phi'(u_l)^2] at the activation's input u_l = norm(x_{l-1}) and k_l the norm's gain 1/s^2
  (1 without a norm). The stream is not Gaussian: it is the stem's output phi(z_1) plus the
  sum of the blocks' increments, Gaussian and independent of it, so u_l's law is that of
  phi(sqrt(s_1) z_1) + sqrt(V_l) z_2 (centred and scaled by the norm, if any), and the
  expectations are two-dimensional Gauss-Hermite sums; V grows by alpha^2 (sigma_w2 E[phi(u)^2]
  + sigma_b2) per block.
- ``post`` (x_l = phi(x_{l-1} + alpha norm(h_l)), h_l = x_{l-1} W_l + b_l). The branch ends
  in its Linear and norm, centred, but the activation after the sum gates the skip path too,
  unit by unit, and a unit's gate persists from block to block: redrawing the masks in every
  block (E[phi'(s)^2] per block, as gradient independence would) predicts the wrong sign
  (relu, no norm, depth 64: +0.019 decades per layer against -0.003 measured). The maps
  therefore follow sampled unit trajectories (``post_maps``): deterministic, and made from no
  run's data.
- ``branch_act`` (x_l = x_{l-1} + alpha phi(norm(h_l))): in ``theory.py``; its branch is not
  centred, see ``coherent_gain``.

Inputs: the n probe examples' second moments are summarised by ``EXAMPLE_BINS`` equal-count
bins (the mean of each), which keeps the two-dimensional sums cheap; batch norm uses the mean.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from vanishing import activations

N_2D = 48  # Gauss-Hermite nodes per dimension of the two-dimensional sums
UNITS = 2048  # sampled unit trajectories per input of the post block's maps
SAMPLE_SEED = 0
EXAMPLE_BINS = 16


@functools.cache
def _nodes(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = hermegauss(n)
    return x, w / np.sqrt(2.0 * np.pi)


def example_bins(m0: np.ndarray, bins: int = EXAMPLE_BINS) -> np.ndarray:
    """At most ``bins`` representatives of the examples' second moments: the means of
    equal-count bins of the sorted values (all of them when there are fewer)."""
    m0 = np.sort(np.asarray(m0, dtype=float))
    if len(m0) <= bins:
        return m0
    return np.array([part.mean() for part in np.array_split(m0, bins)])


def _norm_gain(norm: str, q, batch_var):
    """1 / s^2 of the norm (as ``theory._norm_gain``), for arrays."""
    if norm == "none":
        return np.ones_like(np.asarray(q, dtype=float))
    return 1.0 / (q if norm == "layer" else batch_var)


def pre_maps(activation, norm, sw2, sb2, m0, alpha):
    """(step, own) (depth, n) of a ``pre`` net for inputs of second moments m0 (n,)."""
    spec = activations.get(activation)
    z, w = _nodes(N_2D)
    depth, n = len(sw2), len(m0)
    step, own = np.ones((depth, n)), np.empty((depth, n))
    q1 = sw2[0] * m0 + sb2[0]
    k1 = _norm_gain(norm, q1, sw2[0] * m0)
    s1 = q1 if norm == "none" else np.ones(n)
    own[0] = k1 * ((spec.dphi(np.sqrt(s1)[:, None] * z) ** 2) @ w)
    stem = spec.phi(np.sqrt(s1)[:, None, None] * z[None, :, None])  # (n, N, 1): phi(z_1)
    ww = np.outer(w, w)[None]  # (1, N, N) weights of (z_1, z_2)
    mu = (stem[..., 0] @ w)[:, None, None]  # (n, 1, 1): the stream's mean (the stem's)
    m2 = (stem[..., 0] ** 2 @ w)[:, None, None]
    var_v = np.zeros((n, 1, 1))  # V: the increments' variance so far
    for i in range(1, depth):
        x = stem + np.sqrt(var_v) * z[None, None, :]  # (n, N, N): stream values
        if norm == "none":
            u, k = x, np.ones(n)
        else:
            sd2 = m2 + var_v - mu**2
            u, k = (x - mu) / np.sqrt(sd2), 1.0 / sd2[:, 0, 0]
        a = (spec.dphi(u) ** 2 * ww).sum((1, 2))
        e2 = (spec.phi(u) ** 2 * ww).sum((1, 2))
        step[i] = 1.0 + alpha**2 * sw2[i] * k * a
        own[i] = alpha**2
        var_v = var_v + (alpha**2 * (sw2[i] * e2 + sb2[i]))[:, None, None]
    return step, own


def post_maps(activation, norm, sw2, sb2, m0, alpha):
    """(step, own) (depth, n) of a ``post`` net for inputs of second moments m0 (n,), from
    ``UNITS`` sampled unit trajectories per input (a fixed generator: the same numbers every
    time). Forward, per unit: s_l = x_{l-1} + alpha sd_l xi_l, x_l = phi(s_l), with xi_l ~ N(0,
    1) fresh in every block (another row of W_l) and sd_l^2 = q_l (no norm) or 1. Backward, per
    unit: g_{l-1}^2 = D_l g_l^2 + alpha^2 sigma_w2 k_l mean_units(D_l g_l^2), D_l = phi'(s_l)^2:
    the skip keeps a unit's own gradient, gated by that unit's own masks, which persist from
    block to block (a relu unit that is large stays open); only the branch (through W_l)
    spreads gradient over the units, where independence holds."""
    spec = activations.get(activation)
    rng = np.random.default_rng(SAMPLE_SEED)
    depth, n = len(sw2), len(m0)
    q1 = sw2[0] * m0 + sb2[0]
    k = np.empty((depth, n))
    k[0] = _norm_gain(norm, q1, sw2[0] * m0)
    s1 = q1 if norm == "none" else np.ones(n)
    s = np.sqrt(s1)[:, None] * rng.standard_normal((n, UNITS))  # the stem's activation input
    masks = np.empty((depth, n, UNITS))
    masks[0] = spec.dphi(s) ** 2
    x = spec.phi(s)
    for i in range(1, depth):
        p, mu = (x**2).mean(1), x.mean(1)
        q = sw2[i] * p + sb2[i]
        k[i] = _norm_gain(norm, q, sw2[i] * (p - mu**2))
        sd = np.sqrt(q) if norm == "none" else np.ones(n)
        s = x + alpha * sd[:, None] * rng.standard_normal((n, UNITS))
        masks[i] = spec.dphi(s) ** 2
        x = spec.phi(s)
    step, own = np.ones((depth, n)), np.empty((depth, n))
    g2 = np.ones((n, UNITS))  # g_depth^2 per unit, relative to G_depth
    for i in range(depth - 1, -1, -1):
        gated = (masks[i] * g2).mean(1)  # mean over units of D_l g_l^2
        own[i] = (alpha**2 if i > 0 else 1.0) * k[i] * gated / g2.mean(1)
        if i > 0:
            g_prev = masks[i] * g2 + (alpha**2 * sw2[i] * k[i] * gated)[:, None]
            step[i] = g_prev.mean(1) / g2.mean(1)
            g2 = g_prev
    return step, own


def coherent_gain(activation: str, q, mu, sw2: float, alpha: float):
    """Per ``branch_act`` block without a norm, the factor on the rms of the gradient's
    component along the stream's mean direction: 1 + alpha sigma_w2 mu E[phi''(h)], h ~ N(0, q),
    mu the mean over units of x_{l-1} (E[phi''] = E[h phi'(h)] / q by Stein's lemma). A branch
    ending in phi has E[W^T D] != 0: by Stein's lemma W's entries correlate with the mask D
    they produce, and the correlation maps the gradient's mean over units onto x_{l-1}, whose
    mean over units is mu. For relu with He init it is 1 + alpha r / sqrt(pi), r = mu /
    sqrt(E[x^2]) (/work/shared/NOTES.md, "Theory anchors"); tanh and sigmoid have E[phi''] = 0:
    no coherent mode. The mode starts with 1/width of the top gradient's squared norm (a
    random direction's share)."""
    spec = activations.get(activation)
    z, w = _nodes(96)
    q = np.asarray(q, dtype=float)
    h = np.sqrt(q)[..., None] * z
    e_dd = (h * spec.dphi(h)) @ w / q
    return 1.0 + alpha * sw2 * mu * e_dd
