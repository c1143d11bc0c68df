"""Each cell type's step against its floor, through the whole training path, and a study's wall
time against the sum of its cells' bare steps.

    .venv/bin/python benchmarks/floors.py                      # depths 32 and 256
    .venv/bin/python benchmarks/floors.py --depths 32 256 --fit-repeats 5 1
    .venv/bin/python benchmarks/floors.py --depths 32 --no-fit --study DIR --wall 812.3

For each cell type (plain, batch norm, layer norm, residual with alpha = 1/sqrt(depth) and the
block of ``--block``, pre by default; relu, width 64, batch 64, R = 15 replicas as in a 3-seed x
5-lr cell) and depth it prints, in milliseconds per step of all R replicas and per replica-step:

- the floor: the step's matrix products alone (forward x W, backward g W^T and x^T g, warm
  caches, as ``replicas.py --products``) and its optimizer update alone (fused SGD over the
  cell's parameters);
- the bare batched step: index a batch, forward, backward, SGD (no Lightning, probes or
  validation);
- the full training path (``fit_cell``: Lightning, probes at the study's steps, per-epoch
  validation and the final evaluation), from the seconds inside ``trainer.fit``, with the
  default study's schedule (50 epochs, probe_every 100, lrs 0.003-0.3);

then a step-0 profile (no training) of a ``--profile-depth``-layer plain sigmoid and relu net,
10 replicas: its seconds and how many layers' gradients underflowed float32; and the ratios
the speed goals name: each norm against plain at the same depth, full path
against bare step, and time per layer at the deepest depth against the shallowest.
Measurements are interleaved (one round visits every cell type) and the median of the rounds
is printed with its spread (min-max over rounds, in % of the median).

With ``--study DIR --wall SECONDS`` (a finished study's working directory and its wall time)
it also reads every cell's ``results/runs/*/DONE.json`` and the plan files
``results/plan/*.json`` and prints the wall time against the sum over cells of the bare-step
cost (this run's bare cost per replica-step per layer of the cell's type, at the first depth,
x steps x replicas x depth), divided by the cores. Run by hand, not by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from vanishing.config import Cell, DataConfig, ModelConfig, TrainConfig, load_cells
from vanishing.settings import BLOCKS, DEFAULT_BLOCK, DEFAULT_LRS
from vanishing.training.data import load_splits
from vanishing.training.models import BatchedMLP, objective
from vanishing.training.optim import make_optimizer

TYPES = {  # cell type: ModelConfig settings besides activation, depth and width
    "plain": {"norm": "none", "residual": False},
    "batch": {"norm": "batch", "residual": False},
    "layer": {"norm": "layer", "residual": False},
    "residual": {"norm": "none", "residual": True, "residual_scale": "inv_sqrt_depth"},
}
SEEDS = (0, 1, 2)


def cell_type(norm: str, residual) -> str:
    """The benchmark's cell type of a study cell (a norm wins over the skip)."""
    if norm != "none":
        return norm
    return "residual" if str(residual).lower() == "true" else "plain"


def model(kind: str, depth: int, width: int) -> ModelConfig:
    return ModelConfig("relu", depth, width=width, **TYPES[kind])


def seconds(fn, calls: int) -> tuple[float, float]:
    """(wall, CPU) seconds per call of ``fn(i)``."""
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - t0) / calls, (time.process_time() - c0) / calls


class Bare:
    """The bare batched step of one cell (lr 0.01 for every replica: nothing diverges)."""

    def __init__(self, cfg: ModelConfig, R: int, batch: int, x, y):
        self.net = BatchedMLP(cfg, x.shape[1], 10, list(range(R)))
        self.opt, self.weights = make_optimizer(
            "sgd", self.net.parameters(), torch.full((R,), 0.01), 0.9
        )
        gen = torch.Generator().manual_seed(0)
        self.idx = torch.randint(0, len(y), (64, R, batch), generator=gen)
        self.x, self.y = x, y
        self.step(0)

    def step(self, i: int) -> None:
        idx = self.idx[i % len(self.idx)]
        loss = (objective(self.net, self.x[idx], self.y[idx])[0] * self.weights).sum()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def optimizer(self, _: int) -> None:
        self.opt.step()  # the gradients of the last step are still in .grad


class Products:
    """The step's matrix products alone, with the model's shapes and layouts (warm caches)."""

    def __init__(self, depth: int, width: int, R: int, batch: int, input_dim: int):
        dims = [input_dim] + [width] * depth
        self.xs = [torch.randn(R, batch, d) for d in dims[:-1]]
        self.ws = [torch.randn(R, d, width) for d in dims[:-1]]
        self.g = torch.randn(R, batch, width)

    def step(self, _: int) -> None:
        for i, (x, w) in enumerate(zip(self.xs, self.ws, strict=True)):
            torch.bmm(x, w)
            torch.bmm(x.transpose(1, 2), self.g)
            if i > 0:
                torch.bmm(self.g, w.transpose(1, 2))


class NormAlone:
    """A norm's forward and backward alone on one (R, B, W) pre-activation per layer, warm
    caches: the element-wise floor a norm cell adds to a plain one (None on code without
    ``vanishing.training.norms``)."""

    def __init__(self, norm: str, depth: int, width: int, R: int, batch: int):
        from vanishing.training import norms

        gen = torch.Generator().manual_seed(0)
        self.depth = depth
        self.h = torch.randn(R, batch, width, generator=gen).requires_grad_(True)
        self.gamma = torch.ones(R, width, requires_grad=True)
        self.beta = torch.zeros(R, width, requires_grad=True)
        self.g = torch.randn(R, batch, width, generator=gen)
        if norm == "batch":
            self.fn = lambda h, gm, bt: norms.BatchNorm.apply(h, None, gm, bt, [], False)
        else:
            self.fn = lambda h, gm, bt: norms.LayerNorm.apply(h, gm, bt, False)

    @classmethod
    def make(cls, *args):
        try:
            return cls(*args)
        except ImportError:
            return None

    def step(self, _: int) -> None:
        for _ in range(self.depth):
            self.fn(self.h, self.gamma, self.beta).backward(self.g)


def fit_once(cfg: ModelConfig, splits, epochs: int, probe_every: int) -> dict:
    """One fit through the whole training path: (wall, CPU) seconds per step of all replicas.
    Wall: the seconds inside ``trainer.fit`` (``train_seconds``); CPU: the process's CPU
    seconds over the whole ``fit_cell`` call (the Trainer's construction included)."""
    from vanishing.training.module import fit_cell

    train = TrainConfig(epochs=epochs, probe_every=probe_every)
    cell = Cell("floors", DataConfig(), cfg, train, seeds=SEEDS, lrs=DEFAULT_LRS)
    c0 = time.process_time()
    module, secs = fit_cell(cell, splits)
    cpu = time.process_time() - c0
    steps = module.trainer.global_step
    h = module.history
    return {
        "fit": (secs / steps, cpu / steps),
        "probes": (h.probe_seconds / steps,) * 2,
        "eval": (h.eval_seconds / steps,) * 2,
    }


def profile_at_init(depth: int, splits, seeds: int = 10) -> None:
    """A step-0 profile (epochs 0: no Trainer) of a plain sigmoid and a plain relu net of
    ``depth`` layers, ``seeds`` replicas: its seconds, and how many layers' gradients underflowed
    float32 (read exactly 0) in each."""
    from vanishing.training.module import fit_cell

    for activation in ("sigmoid", "relu"):
        cfg = ModelConfig(activation, depth, width=64, norm="none", residual=False)
        cell = Cell("profile", DataConfig(), cfg, TrainConfig(epochs=0),
                    seeds=tuple(range(seeds)), lrs=(0.1,))  # fmt: skip
        t0 = time.perf_counter()
        module, _ = fit_cell(cell, splits)
        wall = time.perf_counter() - t0
        rms = module.history.probes[0][1]["grad_preact_rms"]  # (replicas, depth)
        zero = (rms == 0).sum(axis=1)
        print(
            f"step-0 profile, plain {activation}, depth {depth}, {seeds} replicas: {wall:.1f} s "
            f"(model built and probed); layers whose gradient underflowed float32 (reads 0) "
            f"per replica: {zero.min()}-{zero.max()}; smallest non-zero "
            f"{rms[rms > 0].min():.3g}"
        )


def med(values: list[tuple[float, float]], clock: int = 0) -> float:
    """Median over repeated (wall, CPU) measurements of one clock (0 wall, 1 CPU)."""
    return statistics.median(v[clock] for v in values)


def spread(values: list[tuple[float, float]], clock: int = 0) -> float:
    """(max - min) / median over the repeats."""
    xs = [v[clock] for v in values]
    return (max(xs) - min(xs)) / statistics.median(xs)


def line(label: str, values, R: int, ref=None, what="") -> str:
    """Wall time per step and per replica-step, its spread, CPU time, and ratios to ``ref``
    ((wall, CPU) medians), for one measurement."""
    wall, cpu = med(values), med(values, 1)
    text = (
        f"  {label:<31s}{wall * 1e3:8.2f} ms {wall * 1e3 / R:6.3f} ms/replica-step "
        f"(±{spread(values):4.0%}; CPU {cpu * 1e3:7.2f} ms ±{spread(values, 1):4.0%})"
    )
    if ref:
        text += f" {wall / ref[0]:5.2f} x {what} (CPU {cpu / ref[1]:4.2f} x)"
    return text


def measure_depth(depth: int, a, splits, fit_repeats: int) -> dict:
    """Every measurement at one depth, rounds interleaved over the cell types; returns the
    (wall, CPU) medians per cell type and measurement."""
    x, y = splits.x_train, splits.y_train
    R = len(SEEDS) * len(DEFAULT_LRS)
    kinds = list(TYPES)
    bare = {k: Bare(model(k, depth, a.width), R, a.batch, x, y) for k in kinds}
    products = Products(depth, a.width, R, a.batch, x.shape[1])
    products.step(0)
    norm_alone = {k: NormAlone.make(k, depth, a.width, R, a.batch) for k in ("batch", "layer")}
    steps = max(5, a.steps * 32 // depth)
    t = {k: {"bare": [], "opt": [], "norm": [], "fit": [], "probes": [], "eval": []} for k in kinds}
    t_products = []
    for _ in range(a.repeats):
        t_products.append(seconds(products.step, steps))
        for k in kinds:
            t[k]["bare"].append(seconds(bare[k].step, steps))
            t[k]["opt"].append(seconds(bare[k].optimizer, steps))
            if norm_alone.get(k) is not None:
                t[k]["norm"].append(seconds(norm_alone[k].step, steps))
    del bare
    if a.fit:
        for _ in range(fit_repeats):
            for k in kinds:
                for what, v in fit_once(
                    model(k, depth, a.width), splits, a.epochs, a.probe_every
                ).items():
                    t[k][what].append(v)
    print(f"depth {depth} (width {a.width}, batch {a.batch}, R={R}), per step of all replicas:")
    print(line("matrix products alone (floor)", t_products, R))
    medians = {}
    for k in kinds:
        print(f" {k}")
        print(line("optimizer update alone (floor)", t[k]["opt"], R))
        floor = [med(t_products, c) + med(t[k]["opt"], c) for c in (0, 1)]
        if t[k]["norm"]:
            print(line("the norm's fwd+bwd alone (floor)", t[k]["norm"], R))
            floor = [f + med(t[k]["norm"], c) for c, f in enumerate(floor)]
        print(line("bare batched step", t[k]["bare"], R, floor, "floor"))
        bare_k = [med(t[k]["bare"], c) for c in (0, 1)]
        if t[k]["fit"]:
            print(line("full training path", t[k]["fit"], R, bare_k, "bare"))
            probes, evals = med(t[k]["probes"]), med(t[k]["eval"])
            rest = med(t[k]["fit"]) - bare_k[0] - probes - evals
            print(
                f"    beyond the bare step, per step (wall): probes {probes * 1e3:.2f} ms "
                f"({probes / bare_k[0]:.1%}), per-epoch and final evaluation {evals * 1e3:.2f} ms "
                f"({evals / bare_k[0]:.1%}), the rest (Lightning, bookkeeping) "
                f"{rest * 1e3:.2f} ms ({rest / bare_k[0]:.1%})"
            )
        medians[k] = {w: (med(v), med(v, 1)) for w, v in t[k].items() if v}
    for what in ("bare", "fit"):
        if what not in medians["plain"]:
            continue
        ref = medians["plain"][what]
        ratios = ", ".join(
            f"{k} {medians[k][what][0] / ref[0]:.2f} x (CPU {medians[k][what][1] / ref[1]:.2f} x)"
            for k in kinds
            if k != "plain"
        )
        print(f" against plain at depth {depth} ({what}): {ratios}")
    return {"R": R, **medians}


def study_floor(study: Path, wall: float, cores: int, per_layer: dict[str, float]) -> None:
    """A finished study's wall time against the sum of its cells' bare-step time / cores."""
    results = study / "results"
    done = {
        json.loads(p.read_text())["spec"]["cell"]: json.loads(p.read_text())
        for p in results.glob("runs/*/DONE.json")
    }
    cells = [c for p in sorted(results.glob("plan/*.json")) for c in load_cells(p.read_text())]
    cells = list({c.name: c for c in cells}.values())
    n_train: dict = {}
    bare = fit = 0.0
    for c in cells:
        if c.data not in n_train:
            n_train[c.data] = len(load_splits(c.data, c.train.probe_size).y_train)
        steps = c.train.epochs * (n_train[c.data] // c.train.batch_size)
        replicas = len(c.seeds) * len(c.lrs)
        kind = cell_type(c.model.norm, c.model.residual)
        bare += per_layer[kind] * steps * replicas * c.model.depth
        if c.name in done:
            fit += done[c.name]["timing"]["fit_seconds"]
    missing = len(cells) - sum(c.name in done for c in cells)
    print(
        f"study {study}: {len(cells)} cells ({missing} without DONE.json), "
        f"wall {wall:.1f} s on {cores} cores"
    )
    print(f"  sum of cells' bare steps / cores : {bare / cores:8.1f} s (estimated, relu costs)")
    print(f"  sum of cells' trainer.fit / cores: {fit / cores:8.1f} s (DONE.json fit_seconds)")
    print(f"  wall / (bare steps / cores)      : {wall / (bare / cores):8.2f} x")
    print(f"  fit / bare steps                 : {fit / bare:8.2f} x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int, nargs="+", default=[32, 256])
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=40, help="steps per timing at depth 32")
    p.add_argument("--repeats", type=int, default=7, help="rounds of floor and bare timings")
    p.add_argument(
        "--fit-repeats",
        type=int,
        nargs="+",
        default=[5, 3],
        help="rounds of full-path fits, per depth (the last value for the remaining depths)",
    )
    p.add_argument("--epochs", type=int, default=50, help="of each full-path fit")
    p.add_argument("--probe-every", type=int, default=100)
    p.add_argument("--no-fit", dest="fit", action="store_false", help="skip the full path")
    p.add_argument("--study", type=Path, help="a finished study's working directory")
    p.add_argument("--wall", type=float, help="its wall time in seconds")
    p.add_argument("--cores", type=int, default=os.cpu_count())
    p.add_argument("--profile-depth", type=int, default=1024,
                   help="depth of the step-0 profile timed at the end (0: none)")  # fmt: skip
    p.add_argument("--block", choices=BLOCKS, default=DEFAULT_BLOCK,
                   help="the residual cell's block (training/models.py)")  # fmt: skip
    a = p.parse_args()
    TYPES["residual"]["block"] = a.block
    if a.study is not None and a.wall is None:
        p.error("--study needs --wall")
    torch.set_num_threads(a.threads)
    splits = load_splits(DataConfig(), 256)
    print(f"torch {torch.__version__}, {a.threads} thread(s), {os.cpu_count()} cores")
    results = {}
    for i, depth in enumerate(a.depths):
        fit_repeats = a.fit_repeats[min(i, len(a.fit_repeats) - 1)]
        results[depth] = measure_depth(depth, a, splits, fit_repeats)
    lo, hi = min(a.depths), max(a.depths)
    if hi != lo:
        for what in ("bare", "fit"):
            per = ", ".join(
                f"{k} {results[hi][k][what][0] / hi / (results[lo][k][what][0] / lo):.2f} x "
                f"(CPU {results[hi][k][what][1] / hi / (results[lo][k][what][1] / lo):.2f} x)"
                for k in TYPES
                if what in results[hi][k] and what in results[lo][k]
            )
            if per:
                print(f"time per layer, depth {hi} against {lo} ({what}): {per}")
    if a.profile_depth:
        profile_at_init(a.profile_depth, splits)
    if a.study is not None:
        R = results[lo]["R"]
        per_layer = {k: results[lo][k]["bare"][0] / (R * lo) for k in TYPES}
        study_floor(a.study, a.wall, a.cores, per_layer)


if __name__ == "__main__":
    main()
