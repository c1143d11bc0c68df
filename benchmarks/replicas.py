"""Time per training step: one replica, R replicas batched, R replicas one after another, and a
hand-written plain PyTorch loop of the same MLP; then the same cell through Lightning.

    .venv/bin/python benchmarks/replicas.py [--depth 32 --width 64 --batch 64 --threads 1]

Prints milliseconds per step (median of several repeats) and the ratio batched(R) / alone.
Run by hand, not by the test suite; quote its output with the machine it ran on.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from vanishing.config import Cell, DataConfig, ModelConfig, TrainConfig
from vanishing.training.data import load_splits
from vanishing.training.models import BatchedMLP, objective
from vanishing.training.optim import make_optimizer


def time_steps(step, steps: int, warmup: int = 5) -> float:
    """Milliseconds per call of ``step(i)`` over ``steps`` calls, after ``warmup`` calls."""
    for i in range(warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    return (time.perf_counter() - t0) / steps * 1000


def batched_step_ms(cfg: ModelConfig, R: int, batch: int, x_all, y_all, steps: int) -> float:
    net = BatchedMLP(cfg, x_all.shape[1], 10, list(range(R)))
    opt, weights = make_optimizer("sgd", net.parameters(), torch.full((R,), 0.01), 0.9)
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, len(y_all), (steps + 5, R, batch), generator=gen)

    def step(i):
        x, y = x_all[idx[i]], y_all[idx[i]]
        loss = (objective(net, x, y)[0] * weights).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    return time_steps(step, steps)


def plain_step_ms(cfg: ModelConfig, batch: int, x_all, y_all, steps: int) -> float:
    """The reference: nn.Sequential of Linear/BatchNorm1d/activation and torch.optim.SGD."""
    act = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}[cfg.activation]
    layers, d = [], x_all.shape[1]
    for _ in range(cfg.depth):
        layers += [nn.Linear(d, cfg.width)]
        if cfg.norm == "batch":
            layers += [nn.BatchNorm1d(cfg.width)]
        layers += [act()]
        d = cfg.width
    net = nn.Sequential(*layers, nn.Linear(d, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    idx = torch.randint(0, len(y_all), (steps + 5, batch), generator=gen)
    loss_fn = nn.CrossEntropyLoss()

    def step(i):
        loss = loss_fn(net(x_all[idx[i]]), y_all[idx[i]])
        opt.zero_grad()
        loss.backward()
        opt.step()

    return time_steps(step, steps)


def products_ms(cfg: ModelConfig, R: int, batch: int, input_dim: int, steps: int) -> float:
    """Milliseconds for the matrix products of one training step alone: per hidden layer the
    forward x W, and backward g W^T (not for layer 1) and x^T g, with the model's shapes and
    layouts, on warm caches. Their arithmetic is what batching cannot share between replicas."""
    dims = [input_dim] + [cfg.width] * cfg.depth
    xs = [torch.randn(R, batch, d) for d in dims[:-1]]
    ws = [torch.randn(R, d, cfg.width) for d in dims[:-1]]
    g = torch.randn(R, batch, cfg.width)

    def step(_):
        for i, (x, w) in enumerate(zip(xs, ws, strict=True)):
            torch.bmm(x, w)
            torch.bmm(x.transpose(1, 2), g)
            if i > 0:
                torch.bmm(g, w.transpose(1, 2))

    return time_steps(step, steps)


def median(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=32)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--norm", default="none")
    p.add_argument("--activation", default="relu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 4, 12, 48])
    p.add_argument("--lightning", action="store_true", help="also time a Lightning fit (R=12)")
    p.add_argument(
        "--products", action="store_true", help="also time the step's matrix products alone"
    )
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    splits = load_splits(DataConfig(), 256)
    x, y = splits.x_train, splits.y_train
    cfg = ModelConfig(a.activation, a.depth, a.norm, False, a.width)
    print(
        f"depth {a.depth}, width {a.width}, batch {a.batch}, norm {a.norm}, "
        f"{a.activation}, threads {a.threads}, torch {torch.__version__}"
    )
    plain = median(lambda: plain_step_ms(cfg, a.batch, x, y, a.steps), a.repeats)
    alone = median(lambda: batched_step_ms(cfg, 1, a.batch, x, y, a.steps), a.repeats)
    print(f"plain PyTorch loop, one model      : {plain:7.2f} ms/step")
    print(f"batched model, R=1 (one replica)   : {alone:7.2f} ms/step")
    for R in a.replicas:
        if R == 1:
            continue
        ms = median(lambda R=R: batched_step_ms(cfg, R, a.batch, x, y, a.steps), a.repeats)
        print(
            f"batched model, R={R:<3d}              : {ms:7.2f} ms/step  "
            f"= {ms / alone:5.2f} x one replica; one after another: {R * alone:7.2f} ms "
            f"({R * alone / ms:4.1f} x slower)"
        )
    if a.products:
        for R in a.replicas:
            ms = median(lambda R=R: products_ms(cfg, R, a.batch, x.shape[1], a.steps), a.repeats)
            print(
                f"matrix products alone, R={R:<3d}     : {ms:7.2f} ms/step "
                f"= {ms / alone:5.2f} x one replica's whole step"
            )
    if a.lightning:
        from vanishing.training.module import fit_cell

        cell = Cell("bench", DataConfig(), cfg, TrainConfig(epochs=10, probe_every=50))
        one = None
        for seeds, lrs in (
            ([0], [0.01]),
            ([s for s in range(3) for _ in range(4)], [0.003, 0.01, 0.03, 0.1] * 3),
        ):
            module, secs = fit_cell(cell, splits, seeds, lrs)
            ms = secs / module.trainer.global_step * 1000
            one = one or ms
            print(
                f"Lightning fit, R={len(seeds):<3d}             : {ms:7.2f} ms/step "
                f"= {ms / one:5.2f} x R=1 through Lightning (probes "
                f"{module.history.probe_seconds:.2f} s, evaluation "
                f"{module.history.eval_seconds:.2f} s of {secs:.2f} s)"
            )


if __name__ == "__main__":
    main()
