"""The registry of settings: every knob of a study, defined once.

Each entry says which part of the study it belongs to (the config section and the dataclass:
``data``, ``model`` or ``train``), how text parses into its value, its default, whether a study
may make it a grid axis, whether it is one of the four architecture axes every grid has, and
whether it changes the network at initialisation (then every statistic measured at step 0
groups by it, so two values are never pooled). Every list of settings in the package is derived
from here: the dataclasses in ``vanishing.config``, the flags of ``vanishing train``, cell names,
the setting columns of every table (in registry order), the grouping keys of statistics,
comparisons, evidence, theory and figures, and the synthetic tables of the tests.

The JSON schema ``workflow/schemas/config.schema.yaml`` stays the user-facing contract (it
documents and bounds each value); ``tests/test_settings.py`` checks that schema and registry
agree. Torch-free: the Snakefile imports this at load time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vanishing.activations import NAMES as ACTIVATIONS
from vanishing.architectures import NAMES as ARCHS  # the architectures (their registry)
from vanishing.inits import INITS
from vanishing.meanfield import CHI_PREFIX, CRITICAL, parse_target
from vanishing.training.sequences import SEQUENCE_DATASETS

INV_SQRT_DEPTH = "inv_sqrt_depth"  # residual_scale = 1 / sqrt(depth)
SKIPINIT = "skipinit"  # residual_scale: a learnable gain per block, 0 at init (SkipInit / ReZero)
FIXUP = "fixup"  # residual_scale: learnable gain 1, branch's Linear 0 at init (Fixup, one layer)
LEARNED_SCALES = (SKIPINIT, FIXUP)
DEFAULT_LRS = (0.003, 0.01, 0.03, 0.1, 0.3)
PARTS = ("data", "model", "train")
DATASETS = ("digits", "mnist1d", "mnist", *SEQUENCE_DATASETS)
NORMS = ("none", "batch", "layer")
OPTIMIZERS = ("sgd", "adam", "lnsgd")
BLOCKS = ("branch_act", "post", "pre")  # residual blocks; see training/models.py
DEFAULT_BLOCK = "pre"  # He et al. (2016b): a clean identity path, a centred branch
AUTO = "auto"


def parse_bool(text) -> bool:
    """``true``/``false`` (also 1/0, yes/no, and bools), as configs and tables spell them."""
    if isinstance(text, bool):
        return text
    word = str(text).strip().lower()
    if word in ("true", "1", "1.0", "yes"):
        return True
    if word in ("false", "0", "0.0", "no"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def parse_scale(text) -> float | str:
    """A variance scale: a number, or ``auto`` (the init scheme's own)."""
    return AUTO if text == AUTO else float(text)


def parse_sigma_w2(text) -> float | str:
    """A weight scale: a number, ``auto``, or a named point (``critical``, ``chi0.5``: the
    sigma_w2 at which mean-field chi is 1 or 0.5 for the cell's activation; ``inits``)."""
    if isinstance(text, str) and (text == CRITICAL or text.startswith(CHI_PREFIX)):
        parse_target(text)  # a clear error for a bad name
        return text
    return parse_scale(text)


def parse_residual_scale(text) -> float | str:
    """A number, ``inv_sqrt_depth`` (1 / sqrt(depth)), ``skipinit`` or ``fixup`` (learnable
    gains; see ``training/models.py``)."""
    if text in (INV_SQRT_DEPTH, *LEARNED_SCALES):
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"residual_scale must be a number, {INV_SQRT_DEPTH}, {SKIPINIT} or {FIXUP}; "
            f"got {text!r}"
        ) from None


@dataclass(frozen=True)
class Setting:
    """One setting. ``name`` is its config key, dataclass field, CLI flag (with dashes), table
    column and MLflow param; ``key`` is its key inside its config section where that differs
    (the data set is ``data.name`` in the config, ``data`` everywhere else)."""

    name: str
    part: str
    parse: Callable[[str], object]
    default: object = None
    arch: bool = False  # a required grid axis (activation, depth, norm, residual); no default
    axis: bool = True  # may be listed under grid (then it is an axis of the study)
    init: bool = False  # changes the network at step 0: init statistics group by it
    column: bool = True  # a setting column of every per-run table, and an MLflow param
    replica: bool = False  # varies between the replicas of a cell (the lr), not between cells
    choices: tuple | None = None  # the allowed values, where they are a fixed list
    # matters only when this bool setting is true, or (``key=value``) when setting ``key`` has
    # that value (else it is held at its default)
    only_if: str | None = None

    @property
    def key(self) -> str:
        return "name" if self.name == "data" else self.name

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("data", "data", str, "digits", init=True, choices=DATASETS),
    # the sequence tasks' length T, the recurrent nets' depth in time (0: data without time)
    Setting("seq_len", "data", int, 0, init=True),
    Setting("arch", "model", str, "mlp", init=True, choices=ARCHS),
    Setting("activation", "model", str, arch=True, init=True, choices=ACTIVATIONS),
    Setting("depth", "model", int, arch=True, init=True),
    Setting("norm", "model", str, arch=True, init=True, choices=NORMS),
    Setting("residual", "model", parse_bool, arch=True, init=True),
    Setting("width", "model", int, 64, init=True),
    Setting("init", "model", str, "auto", init=True, choices=INITS),
    # Var(W) * fan_in and Var(b), overriding the init scheme's scale where not ``auto``
    Setting("sigma_w2", "model", parse_sigma_w2, AUTO, init=True),
    Setting("sigma_b2", "model", parse_scale, AUTO, init=True),
    Setting("block", "model", str, DEFAULT_BLOCK, init=True, choices=BLOCKS, only_if="residual"),
    Setting("residual_scale", "model", parse_residual_scale, 1.0, init=True, only_if="residual"),
    Setting("optimizer", "train", str, "sgd", choices=OPTIMIZERS),
    Setting("lr", "train", float, DEFAULT_LRS, replica=True),
    Setting("momentum", "train", float, 0.9),
    Setting("adam_eps", "train", float, 1e-8, only_if="optimizer=adam"),  # torch's default
    Setting("weight_decay", "train", float, 0.0),
    # batch norm's statistics at step 0 come from the probe batch, but a batch size that differs
    # is kept apart anyway: pooling is only safe where the networks are the same
    Setting("batch_size", "train", int, 64, init=True),
    Setting("epochs", "train", int, 30),
    Setting("probe_every", "train", int, 50, axis=False),
    Setting("probe_size", "train", int, 256, axis=False, column=False),
    Setting("val_fraction", "data", float, 0.2, axis=False, column=False),
    Setting("test_fraction", "data", float, 0.2, axis=False, column=False),
    Setting("split_seed", "data", int, 0, axis=False, column=False),
    Setting("mnist1d_samples", "data", int, 4000, axis=False, column=False),
)
BY_NAME = {s.name: s for s in SETTINGS}
# the type of a setting's value, from the function that parses it (the dataclasses' annotations)
TYPES = {str: str, int: int, float: float, parse_bool: bool, parse_scale: float | str,
         parse_residual_scale: float | str}  # fmt: skip


def value_type(s: Setting) -> type:
    """The type of ``s``'s values (``typing.Any`` for a parser not in ``TYPES``)."""
    from typing import Any

    return TYPES.get(s.parse, Any)


def names(**where) -> tuple[str, ...]:
    """Setting names, in registry order, whose attributes equal ``where`` (e.g. ``init=True``)."""
    return tuple(s.name for s in SETTINGS if all(getattr(s, k) == v for k, v in where.items()))


# The lists the rest of the package uses, all derived from SETTINGS.
COLUMNS = names(column=True)  # setting columns of every per-run table, in this order
CELL_KEYS = tuple(k for k in COLUMNS if not BY_NAME[k].replica)  # what tells cells apart
INIT_KEYS = tuple(k for k in CELL_KEYS if BY_NAME[k].init)  # what fixes the network at step 0
ARCH_AXES = names(arch=True)
AXES = names(axis=True)  # what a grid may list
PACKABLE = tuple(k for k in AXES if not BY_NAME[k].replica)  # what `pack` may list


def part(name: str) -> tuple[Setting, ...]:
    """The settings of one config section (``data``, ``model`` or ``train``)."""
    if name not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {name!r}")
    return tuple(s for s in SETTINGS if s.part == name)


def canonical(values: dict) -> dict:
    """``values`` with every setting that does not apply (``only_if`` false) at its default, so
    that cells differing only in such a setting are one cell (a branch gain without a branch)."""
    out = dict(values)
    for s in SETTINGS:
        if s.only_if and s.name in out and not applies(s, out):
            out[s.name] = s.default
    return out


def applies(setting: Setting, values: dict) -> bool:
    """Whether ``setting`` matters for a cell with these ``values`` (its ``only_if``)."""
    if not setting.only_if:
        return True
    key, _, value = setting.only_if.partition("=")
    if value:
        return str(values.get(key, BY_NAME[key].default)) == value
    return parse_bool(values.get(key, False))


def format_value(value) -> str:
    """How a setting's value is spelt in cell names, job names, tags and flags."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
