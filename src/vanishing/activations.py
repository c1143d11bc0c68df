"""The registry of activations: each one defined once, for the model, the probes, the theory and
the figures.

An entry holds the torch function the model applies (by dotted name, so this module imports no
torch), the mean-field phi and phi' (numpy) the theory integrates, the largest slope phi' takes
(the saturation rule measures against it), whether it saturates (squashes its input into a
bounded range: sigmoid, tanh) or rectifies, the init scheme ``init: auto`` gives it, and its
colour in the figures. Adding an activation is one entry here, its name in the schema's enum
(``tests/test_settings.py`` checks they agree) and its tests.

Saturation, as the probes measure it (``vanishing.training.probes``):
- saturating activations: the fraction of (example, unit) pairs whose slope phi'(a) is below
  ``SATURATION_LEVEL`` of ``max_slope``;
- rectifying ones: the fraction of units whose input a is <= 0 on every probe example (dead).
These are two measures (one counts pairs, the other units) that cannot be compared across the
two kinds. One measure for every activation, ``stuck``: the fraction of units whose slope
|phi'(a)| is below ``STUCK_LEVEL`` of ``max_slope`` on EVERY probe example, a unit that passes
(almost) no gradient whatever the input: a dead relu unit and a saturated sigmoid/tanh unit alike.

Why ``STUCK_LEVEL`` = 1%, fixed before the data: such a unit passes at least two decades less
gradient than at its steepest, on every input, so it adds nothing a layer's other units do not
dominate. It is an |a| beyond 5.99 for sigmoid (phi' < 0.0025) and 2.99 for tanh (phi' < 0.01),
about 3 standard deviations of a unit input of variance 1 (tanh's critical point): a centred
unit is stuck on one example with probability 0.003, on all of P = 64 examples never; for
relu the share does not matter (phi' is exactly 0 or 1; a stuck unit is a dead one, a <= 0
everywhere). What the measure counts is a unit whose input is shifted as a whole (by its bias
or by the layer below's mean), not the tails of its spread. gelu's slope turns negative below
a = -0.75: it is |phi'| that is compared, so a unit passing a negative gradient is not stuck.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

SATURATION_LEVEL = 0.05
STUCK_LEVEL = 0.01  # a unit is stuck when |phi'| < this x max_slope on every probe example


def _relu_moments(q):
    """(E[relu(h)], E[relu(h)^2], E[relu'(h)^2]) for h ~ N(0, q), in closed form."""
    half = 0.5 if np.ndim(q) == 0 else np.full(np.shape(q), 0.5)
    return np.sqrt(q / (2.0 * np.pi)), q / 2.0, half


@dataclass(frozen=True)
class Activation:
    name: str
    saturating: bool
    init: str  # the scheme behind init: auto
    torch: str  # dotted name of the torch function
    torch_inplace: str | None  # its in-place form, where its backward needs only its output
    phi: Callable[[np.ndarray], np.ndarray]
    dphi: Callable[[np.ndarray], np.ndarray]
    max_slope: float  # max of phi'
    color: int  # index into seaborn's "colorblind" palette
    moments: Callable | None = None  # closed-form Gaussian moments where quadrature is slow

    @property
    def unit_state(self) -> str:
        """What the saturation probe counts: ``saturated`` or ``dead`` units."""
        return "saturated" if self.saturating else "dead"


def _pointwise(name, saturating, phi, dphi, max_slope, color, moments=None) -> Activation:
    """An entry for an activation torch has as ``torch.<name>`` with an in-place
    ``torch.<name>_`` (its backward needs only its output), with the init its kind wants: Xavier
    for a saturating one, Kaiming (He) for a rectifying one."""
    init = "xavier" if saturating else "kaiming"
    return Activation(name, saturating, init, f"torch.{name}", f"torch.{name}_", phi, dphi,
                      max_slope, color, moments)  # fmt: skip


def _sigmoid_slope(x):
    return special.expit(x) * special.expit(-x)


def _tanh_slope(x):
    return 1.0 - np.tanh(x) ** 2


def _relu(x):
    return np.maximum(x, 0.0)


def _relu_slope(x):
    return (x > 0).astype(float)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        _pointwise("sigmoid", True, special.expit, _sigmoid_slope, max_slope=0.25, color=3),
        _pointwise("tanh", True, np.tanh, _tanh_slope, max_slope=1.0, color=1),
        _pointwise("relu", False, _relu, _relu_slope, 1.0, color=0, moments=_relu_moments),
        Activation(
            "gelu",
            saturating=False,
            init="kaiming",
            torch="torch.nn.functional.gelu",
            torch_inplace=None,  # its backward needs its input
            phi=lambda x: x * special.ndtr(x),  # exact erf GELU: x Phi(x)
            dphi=lambda x: special.ndtr(x) + x * np.exp(-0.5 * x**2) / np.sqrt(2.0 * np.pi),
            max_slope=1.1289,  # at x = sqrt(2): Phi(sqrt 2) + sqrt(2) phi(sqrt 2)
            color=2,
        ),
    )
}
NAMES = tuple(ACTIVATIONS)
SATURATING = tuple(a for a, spec in ACTIVATIONS.items() if spec.saturating)
RECTIFYING = tuple(a for a, spec in ACTIVATIONS.items() if not spec.saturating)


def get(name: str) -> Activation:
    """The registry entry of ``name``; a clear error naming the known ones otherwise."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation must be one of {list(NAMES)}, got {name!r}") from None
