"""Settings as frozen dataclasses, and the expansion of a study config into training jobs.

Torch-free: the Snakefile imports this at load time. The JSON schema in
``workflow/schemas/config.schema.yaml`` holds the defaults; the dataclass defaults here mirror
them, and ``tests/test_config.py`` checks that the two agree.

Vocabulary:
- a *cell* is one combination of the grid axes other than ``lr`` (one architecture and training
  setting); its replicas are every (seed, lr) pair, trained together as one batched model;
- a *job* is one Snakemake training job: the cells that share the values of the unpacked axes.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields

from vanishing.inits import resolve_init

ARCH_AXES = ("activation", "depth", "norm", "residual")
MODEL_KEYS = ("width", "init", "residual_scale")
TRAIN_KEYS = ("optimizer", "lr", "momentum", "weight_decay", "batch_size", "epochs")
# The order of the setting columns in every table (see docs/outputs.md).
SETTINGS = ("data", *ARCH_AXES, *MODEL_KEYS, *TRAIN_KEYS, "probe_every")
DEFAULT_LRS = (0.003, 0.01, 0.03, 0.1, 0.3)
INV_SQRT_DEPTH = "inv_sqrt_depth"  # residual_scale = 1 / sqrt(depth)


@dataclass(frozen=True)
class DataConfig:
    """Which data set, and how it is split (stratified; the same split for every run)."""

    name: str = "digits"
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    split_seed: int = 0
    mnist1d_samples: int = 4000


@dataclass(frozen=True)
class ModelConfig:
    """One MLP architecture: ``depth`` hidden layers of ``width`` units."""

    activation: str
    depth: int
    norm: str
    residual: bool
    width: int = 64
    init: str = "auto"
    residual_scale: float | str = 1.0

    @property
    def init_scheme(self) -> str:
        """The concrete init behind ``auto``."""
        return resolve_init(self.init, self.activation)

    @property
    def branch_gain(self) -> float:
        """alpha in x_l = x_{l-1} + alpha * phi(a_l) (see ``branch_gain``)."""
        return branch_gain(self.residual_scale, self.depth)


def branch_gain(residual_scale: float | str, depth: int) -> float:
    """The residual branch's gain: ``residual_scale`` as a number (also spelt as text, as a
    table may hold it), or 1 / sqrt(depth) for ``inv_sqrt_depth``."""
    if residual_scale == INV_SQRT_DEPTH:
        return float(depth) ** -0.5
    return float(residual_scale)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by all replicas of a cell (the lr is per replica)."""

    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    epochs: int = 30
    probe_every: int = 50
    probe_size: int = 256


@dataclass(frozen=True)
class Cell:
    """One grid cell; ``name`` is ``key~value_...`` over the study's grid axes (lr excluded)."""

    name: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig

    def settings(self, lr: float) -> dict:
        """The setting columns of one run of this cell, in table order."""
        flat = {"data": self.data.name, **asdict(self.model), **asdict(self.train), "lr": lr}
        return {k: flat[k] for k in SETTINGS}


def format_value(value) -> str:
    """How a setting's value is spelt in cell and job names."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def cell_name(values: dict, axes: tuple[str, ...]) -> str:
    """``activation~relu_depth~8_...`` over ``axes`` (the order of the grid in the config)."""
    return "_".join(f"{k}~{format_value(values[k])}" for k in axes) or "all"


def study_lrs(config: dict) -> list[float]:
    """The learning rates every cell trains: ``grid.lr`` if given, else ``train.lr``."""
    lr = config["grid"].get("lr", config["train"]["lr"])
    return [float(x) for x in (lr if isinstance(lr, list) else [lr])]


def check_config(config: dict) -> None:
    """Checks that a JSON schema cannot express; raises ValueError naming the key."""
    grid = config["grid"]
    for axis in config["pack"]:
        if axis not in grid:
            raise ValueError(
                f"pack: {axis!r} is not a grid axis; packable grid axes here: "
                f"{[a for a in grid if a != 'lr']}"
            )
    if config["train"]["probe_size"] < 2:
        raise ValueError("train.probe_size must be at least 2")


def expand_jobs(config: dict) -> dict[str, list[dict]]:
    """Job name -> the full settings of each of its cells (a validated config in, plain dicts out).

    Every grid axis except ``lr`` is a cell axis; the lrs and seeds of a cell are its replicas.
    Axes in ``pack`` vary within a job; the others name the job.
    """
    check_config(config)
    grid = {k: v for k, v in config["grid"].items() if k != "lr"}
    axes = tuple(grid)
    job_axes = tuple(a for a in axes if a not in config["pack"])
    fixed = {**config["model"], **config["train"]}
    fixed.pop("lr")
    jobs: dict[str, list[dict]] = {}
    for combo in itertools.product(*grid.values()):
        values = {**fixed, **dict(zip(axes, combo, strict=True))}
        values["cell"] = cell_name(values, axes)
        jobs.setdefault(cell_name(values, job_axes), []).append(values)
    return jobs


def cell_from_settings(values: dict, data: DataConfig) -> Cell:
    """Build a Cell from flat settings (as ``expand_jobs`` makes them)."""
    model = ModelConfig(**{f.name: values[f.name] for f in fields(ModelConfig)})
    train = TrainConfig(**{f.name: values[f.name] for f in fields(TrainConfig)})
    return Cell(name=values["cell"], data=data, model=model, train=train)
