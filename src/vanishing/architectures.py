"""The registry of architectures: what each ``arch`` value builds, probes, reads and predicts.

One entry per ``arch`` value says

- ``model``: the dotted path of its batched model class under ``vanishing.training`` (R replicas
  of a cell in one module), built as ``cls(model_config, input_dim, n_classes, seeds)``;
- ``layer``: what one "layer" is for the per-layer probes (rows ``layer = 1..depth`` of
  ``layer_gradients.csv``, layer 1 nearest the input, layer ``depth`` the top);
- ``inputs``: the kind of example it takes (``vectors``, ``images``, ``sequences``); each data
  set says which kinds it can give (``DATA_KINDS``);
- ``depths``: its depth rule in words, and ``depth_error`` the check behind it (a message, or
  None for a valid depth), applied to every cell before any work starts;
- ``theory``: the dotted name of the function that predicts its gradient profile at init, or
  None with ``outside_theory`` saying why it has none.

Every list of architectures (``settings.ARCHS``, the schema's ``arch`` enum, checked by
``tests/test_architectures.py``) follows this registry. Torch-free: the Snakefile loads it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

INPUT_KINDS = ("vectors", "images", "sequences")

# The kinds of example each data set can give: an image data set also gives its pixels as a
# flat vector (the MLPs read the 8x8 digits that way).
DATA_KINDS = {
    "digits": ("vectors", "images"),  # sklearn's 8x8 digits, 1 channel
    "mnist1d": ("vectors",),  # 40-sample 1-d signals
}


@dataclass(frozen=True)
class Architecture:
    """One ``arch`` value (see the module docstring for the fields)."""

    name: str
    model: str
    layer: str
    inputs: str
    depths: str
    depth_error: Callable[[int], str | None]
    theory: str | None
    outside_theory: str = ""

    def __post_init__(self):
        if self.inputs not in INPUT_KINDS:
            raise ValueError(f"{self.name}: inputs must be one of {INPUT_KINDS}")
        if (self.theory is None) == (not self.outside_theory):
            raise ValueError(f"{self.name}: give a theory function or the reason it has none")

    def model_class(self):
        """The batched model class (imports torch: call it from ``training`` only)."""
        module, _, name = self.model.rpartition(".")
        return getattr(importlib.import_module(module), name)


def _mlp_depth(depth: int) -> str | None:
    return None if depth >= 1 else f"an mlp needs at least 1 hidden layer, got depth {depth}"


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture(
        name="mlp",
        model="vanishing.training.models.BatchedMLP",
        layer="a hidden fully connected layer: h_l = x_{l-1} W_l + b_l (the classifier is not "
        "counted: depth hidden layers, then the logits)",
        inputs="vectors",
        depths="any depth >= 1 (hidden layers)",
        depth_error=_mlp_depth,
        theory="vanishing.analysis.theory.predicted_profile",
    ),
)
BY_NAME = {a.name: a for a in ARCHITECTURES}
NAMES = tuple(a.name for a in ARCHITECTURES)


def get(name: str) -> Architecture:
    if name not in BY_NAME:
        raise ValueError(f"arch must be one of {list(NAMES)}, got {name!r}")
    return BY_NAME[name]


def check(arch: str, depth: int, data: str) -> None:
    """Raise ValueError naming what is wrong when ``arch`` cannot be built at ``depth`` or cannot
    read the data set ``data``; called for every cell before any work starts."""
    a = get(arch)
    problem = a.depth_error(int(depth))
    if problem:
        raise ValueError(f"arch {arch}: {problem} (valid: {a.depths})")
    kinds = DATA_KINDS.get(data)
    if kinds is None:
        raise ValueError(f"data {data!r} is not a known data set ({sorted(DATA_KINDS)})")
    if a.inputs not in kinds:
        raise ValueError(f"arch {arch} takes {a.inputs}, and data {data!r} gives only {kinds}")
