"""Mean-field theory of the plain conv nets at initialisation, without torch.

Xiao et al. (2018, "Dynamical isometry and a mean field theory of CNNs", sections 2-3): for a
conv net whose kernels are i.i.d. with Var(W) * fan_in = sigma_w2 (fan_in = k^2 C_in), or
delta-orthogonal (only the centre tap, an orthogonal matrix), the variance of a pre-activation
obeys the fully connected net's map q_l = sigma_w2 E[phi(h_{l-1})^2] + sigma_b2, and the
back-propagated squared gradient norm of one example is multiplied per conv layer by the MLP's

    chi_l = sigma_w2_l E[phi'(h_{l-1})^2],   h_{l-1} ~ N(0, q_{l-1})

(the spatially uniform mode; the others decay at least as fast). A stride-2 conv keeps this
form: each input position feeds a quarter as many outputs, and there are a quarter as many
outputs, so the summed squared norm still changes by chi_l; its sigma_w2 is that of its own
(c_in, c_out) shape (gain-1 orthogonal and delta-orthogonal kernels that double the channels
have sigma_w2 = c_in / c_out = 1/2 there). So a plain conv net's ``grad_preact_rms`` falls
toward the input by -0.5 log10(chi_l) decades at conv layer l, as the MLP of the same activation
and sigma_w2 does. With batch norm the factor is Yang et al.'s (2019) E[phi'^2] / Var(phi) (per
channel over examples and positions), with layer norm the MLP's layer-norm factor (``theory``).

Where this theory stops (``conv_profile`` gives None, or NaN at a layer):
- the classifier (layer ``depth``): its h is the logits after pooling, not a conv output;
- residual conv nets: their blocks are left to the blocks' theory (docs/theory.md);
- zero padding: border positions see fewer inputs, which the theory ignores. On small maps
  (the last stage of 8x8 digits is 2x2, every position a corner) the measured gradient falls
  faster than predicted near the top (tests/test_convnets.py measures it on 16x16 noise).
"""

from __future__ import annotations

import numpy as np

from vanishing.analysis.theory import batchnorm_chi, layernorm_chi, moments
from vanishing.architectures import conv_specs
from vanishing.inits import bias_variance, conv_weight_variance, resolve_init

KERNEL = 3


def conv_sigmas(init_scheme: str, activation: str, c_in: int, c_out: int) -> tuple[float, float]:
    """(sigma_w2, sigma_b2) of a c_in -> c_out 3x3 conv under ``init_scheme``: Var(W) * 9 c_in
    and Var(b) (PyTorch counts a kernel's fan-in and fan-out as k^2 C)."""
    scheme = resolve_init(init_scheme, activation)
    fan_in = KERNEL**2 * c_in
    return conv_weight_variance(scheme, c_in, c_out, KERNEL) * fan_in, bias_variance(scheme, fan_in)


def conv_log_chis(
    activation: str, init_scheme: str, norm: str, depth: int, width: int, q0: float = 1.0
) -> np.ndarray:
    """log10 chi_l of conv layers 2..depth-1 (depth - 2,): the factor on the squared gradient
    norm from h_l down to h_{l-1}. ``q0``: the input's second moment (1 when standardised)."""
    if norm not in ("none", "batch", "layer"):
        raise ValueError(f"norm must be none, batch or layer, got {norm!r}")
    specs = conv_specs(depth, width)
    sig = [conv_sigmas(init_scheme, activation, c_in, c_out) for c_in, c_out, _ in specs]
    if norm == "batch":
        return np.full(len(specs) - 1, np.log10(batchnorm_chi(activation)))
    if norm == "layer":
        return np.log10([layernorm_chi(activation, sw2, sb2) for sw2, sb2 in sig[1:]])
    q = sig[0][0] * q0 + sig[0][1]  # the stem reads the image itself
    out = []
    for sw2, sb2 in sig[1:]:
        _, m2, d2 = moments(activation, q)
        out.append(np.log10(sw2 * d2))
        q = sw2 * m2 + sb2
    return np.asarray(out)


def conv_profile(
    activation: str, init_scheme: str, norm: str, residual: bool, depth: int, width: int
) -> np.ndarray | None:
    """Predicted log10 grad_preact_rms (depth,) of a plain conv net, relative to its last conv
    (layer depth - 1 = 0); NaN at the classifier (layer depth). None for a residual net."""
    if residual:
        return None
    with np.errstate(all="ignore"):
        steps = 0.5 * conv_log_chis(activation, init_scheme, norm, depth, width)
    # log10 rms_l - log10 rms_{depth-1} = sum of the steps of layers l+1..depth-1
    rel = np.append(np.cumsum(steps[::-1])[::-1], 0.0)
    if not np.all(np.isfinite(rel)):
        return None
    return np.append(rel, np.nan)
