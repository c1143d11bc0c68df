"""Settings as frozen dataclasses, and the expansion of a study config into cells and jobs.

Torch-free: the Snakefile imports this at load time. The dataclasses are made from the registry
of settings (``vanishing.settings``), which holds every default; the JSON schema documents and
checks the same defaults (``tests/test_settings.py``).

Vocabulary:
- a *sub-grid* is one named factorial grid of a study (``grids: {main: {...}, deep: {...}}``;
  a study with a single ``grid:`` has one, called ``main``); each may set its own seeds and
  learning rates;
- a *cell* is one combination of a sub-grid's axes other than ``lr``; its replicas are every
  (seed, lr) pair, trained together as one batched model. A cell that two sub-grids share is
  trained once and belongs to both;
- a *job* is one Snakemake training job: the cells that share the values of the unpacked axes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field, make_dataclass, replace

from vanishing import architectures
from vanishing import settings as S
from vanishing.inits import bias_variance, hidden_scales, is_named, resolve_init, resolve_sigma_w2
from vanishing.recurrent import check_cell
from vanishing.settings import FIXUP, INV_SQRT_DEPTH, SKIPINIT, format_value

MAIN = "main"  # the sub-grid of a study configured with a single `grid:`


def branch_gain(residual_scale: float | str, depth: int) -> float:
    """The residual branch's gain alpha at init (x_l = x_{l-1} + alpha * branch_l, see
    ``training/models.py``): ``residual_scale`` as a number (also spelt as text, as a table may
    hold it), 1 / sqrt(depth) for ``inv_sqrt_depth``, and the learnable gain's initial value
    for ``skipinit`` (0) and ``fixup`` (1)."""
    if residual_scale == INV_SQRT_DEPTH:
        return float(depth) ** -0.5
    if residual_scale == SKIPINIT:
        return 0.0
    if residual_scale == FIXUP:
        return 1.0
    return float(residual_scale)


def _section(part: str, doc: str, namespace: dict | None = None):
    """The frozen dataclass of one config section, its fields the part's settings (the lr,
    which varies between replicas, is not one): required ones first, in registry order, each
    typed by its parser (``settings.value_type``: ``help`` and ``dataclasses.fields`` show
    ``depth: int``; a static checker does not look inside ``make_dataclass``)."""
    specs = [s for s in S.part(part) if not s.replica]
    ordered = [s for s in specs if s.arch] + [s for s in specs if not s.arch]
    fs = [(s.key, S.value_type(s)) if s.arch else (s.key, S.value_type(s), field(default=s.default))
          for s in ordered]  # fmt: skip
    cls = make_dataclass(f"{part.title()}Config", fs, frozen=True, namespace=namespace or {})
    cls.__doc__ = doc
    return cls


DataConfig = _section("data", "Which data set, and how it is split (the same for every run).")
ModelConfig = _section(
    "model",
    "One MLP architecture: ``depth`` hidden layers of ``width`` units.",
    {
        "init_scheme": property(lambda self: resolve_init(self.init, self.activation)),
        "branch_gain": property(lambda self: branch_gain(self.residual_scale, self.depth)),
        # the sigma_w2 every layer draws with: a number (a named point solved), or auto
        "sigma_w2_resolved": property(
            lambda self: resolve_sigma_w2(
                self.sigma_w2,
                self.activation,
                bias_variance(self.init_scheme, self.width, self.sigma_b2),
            )
        ),
        # (sigma_w2, sigma_b2) of the hidden layers as drawn (the runs table's *_value columns)
        "hidden_scales": property(
            lambda self: hidden_scales(
                self.init, self.activation, self.width, self.sigma_w2, self.sigma_b2
            )
        ),
    },
)
TrainConfig = _section("train", "Optimisation settings shared by the replicas of a cell.")
SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


@dataclass(frozen=True)
class Cell:
    """One cell: its settings, its replicas' seeds and learning rates, and the sub-grids it
    belongs to. ``name`` is ``key~value_...`` over the study's axes (``cell_name``)."""

    name: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    seeds: tuple[int, ...] = (0,)
    lrs: tuple[float, ...] = (0.1,)
    grids: tuple[str, ...] = (MAIN,)

    def values(self) -> dict:
        """Every setting except the lr, by registry name."""
        out = {}
        for part, cfg in (("data", self.data), ("model", self.model), ("train", self.train)):
            out.update({s.name: getattr(cfg, s.key) for s in S.part(part) if not s.replica})
        return {k: out[k] for k in S.BY_NAME if k in out}

    def settings(self, lr: float) -> dict:
        """The setting columns of one run of this cell, in table order."""
        flat = {**self.values(), "lr": lr}
        return {k: flat[k] for k in S.COLUMNS}

    def replicas(self) -> list[tuple[int, float]]:
        """(seed, lr) of every replica, in the order they are batched: lr-major."""
        return [(s, lr) for lr in self.lrs for s in self.seeds]

    def spec(self) -> dict:
        """Everything that decides the cell's numbers (its identity for reruns): settings,
        seeds and lrs, not the sub-grids it belongs to."""
        return {"cell": self.name, "settings": self.values(), "seeds": list(self.seeds),
                "lrs": list(self.lrs)}  # fmt: skip

    def to_dict(self) -> dict:
        return {**self.spec(), "grids": list(self.grids)}

    @classmethod
    def from_dict(cls, d: dict) -> Cell:
        return make_cell(d["settings"], d["cell"], d["seeds"], d["lrs"], d.get("grids", [MAIN]))


def make_cell(values: dict, name: str, seeds, lrs, grids=(MAIN,)) -> Cell:
    """A Cell from flat settings by registry name (missing ones take their defaults)."""
    parts = {}
    for part, cls in SECTIONS.items():
        given = {s.key: values[s.name] for s in S.part(part) if s.name in values}
        parts[part] = cls(**given)
    return Cell(name, **parts, seeds=tuple(int(s) for s in seeds),
                lrs=tuple(float(x) for x in lrs), grids=tuple(grids))  # fmt: skip


def cell_name(values: dict, axes) -> str:
    """``activation~relu_depth~8_...`` over ``axes`` (registry order); ``all`` without axes."""
    return "_".join(f"{k}~{format_value(values[k])}" for k in axes) or "all"


def save_cells(cells: list[Cell]) -> str:
    """The JSON text of a job's plan: its cells, whole."""
    return json.dumps([c.to_dict() for c in cells], indent=1)


def load_cells(text: str) -> list[Cell]:
    return [Cell.from_dict(d) for d in json.loads(text)]


def spec_hash(spec: dict) -> str:
    """A cell's identity for reruns: the hash of its ``Cell.spec()``."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def study_grids(config: dict) -> dict[str, dict]:
    """Name -> sub-grid (axis -> list of values, plus ``seeds`` and ``lr``) of a validated
    config: ``grids`` as given, or the single ``grid`` as ``main``. Each sub-grid's seeds and
    lrs default to the study's (``seeds``, ``train.lr``)."""
    if "grids" in config and "grid" in config:
        raise ValueError("give either grid (one grid) or grids (named sub-grids), not both")
    grids = config.get("grids") or {MAIN: config["grid"]}
    out = {}
    for name, grid in grids.items():
        missing = [a for a in S.ARCH_AXES if a not in grid]
        if missing:
            raise ValueError(f"grids.{name} lacks the required axes {missing}")
        g = {k: _as_list(v) for k, v in grid.items() if k not in ("seeds", "lr")}
        g["seeds"] = list(grid.get("seeds", config["seeds"]))
        g["lr"] = [float(x) for x in _as_list(grid.get("lr", config["train"]["lr"]))]
        out[name] = g
    return out


def apply_design(config: dict, user: dict) -> dict:
    """Give ``config`` (the default study merged with a user's) the user's design: if ``user``
    has ``grid`` or ``grids``, those replace the default study's sub-grids instead of merging
    into them (the other sections merge as usual). Changes ``config`` in place; returns it."""
    if "grid" in user or "grids" in user:
        for key in ("grid", "grids"):
            config.pop(key, None)
            if key in user:
                config[key] = user[key]
    return config


def study_axes(config: dict) -> tuple[str, ...]:
    """The settings that name cells: every setting a sub-grid lists (not lr), registry order."""
    listed = {k for g in study_grids(config).values() for k in g if k not in ("seeds", "lr")}
    return tuple(k for k in S.CELL_KEYS if k in listed)


def study_lrs(config: dict) -> list[float]:
    """Every learning rate any cell trains, sorted."""
    return sorted({lr for g in study_grids(config).values() for lr in g["lr"]})


def check_config(config: dict) -> None:
    """Checks that a JSON schema cannot express; raises ValueError naming the key."""
    study_axes(config)  # every sub-grid names the required axes
    if config["train"]["probe_size"] < 2:
        raise ValueError("train.probe_size must be at least 2")


def expand_cells(config: dict) -> list[Cell]:
    """Every cell of a validated config, each once, in sub-grid then product order.

    A cell's settings are the config's ``data``, ``model`` and ``train`` sections overridden by
    its sub-grid's axes, with the settings that do not apply at their defaults
    (``settings.canonical``: a residual gain without a residual connection). Two sub-grids, or
    two combinations, that make the same cell share it (its ``grids`` lists each sub-grid once);
    they must then give it the same seeds and lrs.
    """
    check_config(config)
    axes = study_axes(config)
    fixed = {s.name: config[s.part].get(s.key, s.default) for s in S.SETTINGS if not s.arch}
    fixed.pop("lr")
    cells: dict[str, Cell] = {}
    for grid_name, grid in study_grids(config).items():
        keys = [k for k in grid if k not in ("seeds", "lr")]
        for combo in itertools.product(*(grid[k] for k in keys)):
            values = S.canonical({**fixed, **dict(zip(keys, combo, strict=True))})
            name = cell_name(values, axes)
            try:
                check_cell(values)
            except ValueError as e:
                raise ValueError(f"grids.{grid_name}, cell {name}: {e}") from None
            cell = make_cell(values, name, grid["seeds"], grid["lr"], (grid_name,))
            if is_named(cell.model.sigma_w2):  # solved now: an error before any work
                try:
                    _ = cell.model.sigma_w2_resolved
                except ValueError as e:
                    raise ValueError(f"grids.{grid_name}, cell {name}: sigma_w2: {e}") from None
            try:  # an architecture that cannot be built fails here, before any work
                m = cell.model
                architectures.check(m.arch, m.depth, cell.data.name, m.init)
            except ValueError as e:
                raise ValueError(f"grids.{grid_name}, cell {name}: {e}") from None
            if name not in cells:
                cells[name] = cell
                continue
            other = cells[name]
            if (other.seeds, other.lrs) != (cell.seeds, cell.lrs):
                raise ValueError(
                    f"cell {name} is in sub-grids {other.grids} and {grid_name!r} with different "
                    "seeds or lrs; give them the same, or make the cells differ in a setting"
                )
            if grid_name not in other.grids:
                cells[name] = replace(other, grids=(*other.grids, grid_name))
    return list(cells.values())


def expand_jobs(config: dict) -> dict[str, list[Cell]]:
    """Job name -> its cells: the cells that share the values of the study's axes not in
    ``pack`` (named by them, like cells). A packed setting the study does not vary is packed
    already (every job has one value of it)."""
    job_axes = tuple(a for a in study_axes(config) if a not in config["pack"])
    jobs: dict[str, list[Cell]] = {}
    for cell in expand_cells(config):
        jobs.setdefault(cell_name(cell.values(), job_axes), []).append(cell)
    return jobs


def run_settings(cell: Cell) -> list[dict]:
    """The setting columns and seed of each replica of ``cell``, in batch order."""
    return [{**cell.settings(lr), "seed": s} for s, lr in cell.replicas()]
