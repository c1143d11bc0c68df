"""Time per training step of one conv cell's R replicas, four ways, in one run:

- batched: ``BatchedCNN`` (grouped convolutions over the replicas; the study's model);
- vmap: PyTorch's model-ensembling recipe, ``torch.func.stack_module_state`` + ``vmap`` over
  ``functional_call`` of one ``nn.Module`` (batch norm made stateless for vmap with
  ``replace_all_batch_norm_modules_``, which only spares it work);
- loop: the R ``nn.Module`` nets one after another, one optimizer;
- floor: the step's convolutions alone (forward and backward of the grouped convs with the
  model's shapes, nothing between them): what batching cannot share.

    .venv/bin/python benchmarks/conv_step.py [--depth 20 --width 8 --replicas 6 --batch 64]

Prints milliseconds per step (CPU time of the process on the CPU, wall time on a GPU; the median
of interleaved rounds) and the ratios vmap / batched, loop / batched and batched / floor. Run by
hand, not by the tests; quote it with the machine and its load.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, replace_all_batch_norm_modules_, stack_module_state, vmap

from vanishing.architectures import conv_specs
from vanishing.config import DataConfig, ModelConfig
from vanishing.training.convnets import BatchedCNN
from vanishing.training.data import load_splits
from vanishing.training.models import objective
from vanishing.training.optim import make_optimizer


class ConvNet(nn.Module):
    """One replica as ordinary layers: plain (conv, BN, ReLU) or He et al.'s post blocks with
    option-A shortcuts; global average pooling and a linear classifier."""

    def __init__(self, depth: int, width: int, residual: bool, side: int, n_classes: int = 10):
        super().__init__()
        self.specs, self.residual, self.side = conv_specs(depth, width), residual, side
        self.convs = nn.ModuleList(nn.Conv2d(i, o, 3, s, 1) for i, o, s in self.specs)
        self.norms = nn.ModuleList(nn.BatchNorm2d(o) for _, o, _ in self.specs)
        self.fc = nn.Linear(self.specs[-1][1], n_classes)

    def forward(self, x):
        u = x.view(-1, 1, self.side, self.side)
        u = F.relu(self.norms[0](self.convs[0](u)))
        for i in range(1, len(self.specs), 2 if self.residual else 1):
            if not self.residual:
                u = F.relu(self.norms[i](self.convs[i](u)))
                continue
            _, c_out, stride = self.specs[i]
            s = u[:, :, ::stride, ::stride]
            s = F.pad(s, (0, 0, 0, 0, 0, c_out - s.shape[1]))
            v = F.relu(self.norms[i](self.convs[i](u)))
            u = F.relu(s + self.norms[i + 1](self.convs[i + 1](v)))
        return self.fc(u.mean(dim=(2, 3)))


DEVICE = torch.device("cpu")


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def clock() -> float:
    """Wall time on a GPU; on the CPU the process's CPU time, which a machine shared with other
    jobs stretches far less than wall time (with one torch thread the two agree when idle)."""
    return time.perf_counter() if DEVICE.type == "cuda" else time.process_time()


def time_steps(step, steps: int, warmup: int = 5) -> float:
    for i in range(warmup):
        step(i)
    sync()
    t0 = clock()
    for i in range(warmup, warmup + steps):
        step(i)
    sync()
    return (clock() - t0) / steps * 1000


def batches(R, batch, n, steps):
    gen = torch.Generator().manual_seed(0)
    return torch.randint(0, n, (steps + 5, R, batch), generator=gen).to(DEVICE)


def time_sgd(opt, loss_of, steps: int) -> float:
    """Milliseconds per optimiser step on the loss ``loss_of(i)`` of step i."""

    def step(i):
        loss = loss_of(i)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return time_steps(step, steps)


def batched_ms(cfg, R, batch, x_all, y_all, steps):
    net = BatchedCNN(cfg, x_all.shape[1], 10, list(range(R))).to(DEVICE)
    opt, weights = make_optimizer("sgd", net.parameters(), torch.full((R,), 0.01), 0.9)
    weights = weights.to(DEVICE)
    idx = batches(R, batch, len(y_all), steps)

    def loss_of(i):
        return (objective(net, x_all[idx[i]], y_all[idx[i]])[0] * weights).sum()

    return time_sgd(opt, loss_of, steps)


def vmap_ms(cfg, R, batch, x_all, y_all, steps, side):
    nets = [ConvNet(cfg.depth, cfg.width, cfg.residual, side).to(DEVICE) for _ in range(R)]
    for n in nets:
        replace_all_batch_norm_modules_(n)
    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")
    opt = torch.optim.SGD(params.values(), lr=0.01, momentum=0.9, foreach=True)
    idx = batches(R, batch, len(y_all), steps)

    def one(p, b, x, y):
        return F.cross_entropy(functional_call(base, (p, b), (x,)), y)

    ensemble = vmap(one)

    return time_sgd(opt, lambda i: ensemble(params, buffers, x_all[idx[i]], y_all[idx[i]]).sum(),
                    steps)  # fmt: skip


def loop_ms(cfg, R, batch, x_all, y_all, steps, side):
    nets = [ConvNet(cfg.depth, cfg.width, cfg.residual, side).to(DEVICE) for _ in range(R)]
    opt = torch.optim.SGD([p for n in nets for p in n.parameters()], lr=0.01, momentum=0.9,
                          foreach=True)  # fmt: skip
    idx = batches(R, batch, len(y_all), steps)

    def step(i):
        opt.zero_grad()
        for r, net in enumerate(nets):
            F.cross_entropy(net(x_all[idx[i, r]]), y_all[idx[i, r]]).backward()
        opt.step()

    return time_steps(step, steps)


def floor_ms(cfg, R, batch, steps, side):
    """The grouped convolutions of one step alone: forward, then their backward (input and
    weight gradients) by autograd, with nothing between the convolutions."""
    specs = conv_specs(cfg.depth, cfg.width)
    ws = [torch.randn(R * o, i, 3, 3, device=DEVICE, requires_grad=True) for i, o, _ in specs]
    x = torch.randn(batch, R, side, side, device=DEVICE)
    x = x.contiguous(memory_format=torch.channels_last)  # the model's layout

    def step(_):
        u = x
        for w, (_, _, s) in zip(ws, specs, strict=True):
            u = F.conv2d(u, w, None, s, 1, 1, R)
        u.sum().backward()

    return time_steps(step, steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--replicas", type=int, default=6)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--residual", action="store_true", help="post blocks (default: plain)")
    p.add_argument("--data", default="digits", choices=["digits", "mnist"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    global DEVICE
    DEVICE = torch.device(a.device)
    torch.set_num_threads(a.threads)
    splits = load_splits(DataConfig(name=a.data), 256)
    x, y = splits.x_train.to(DEVICE), splits.y_train.to(DEVICE)
    side = int(x.shape[1] ** 0.5)
    cfg = ModelConfig("relu", a.depth, "batch", a.residual, width=a.width, block="post",
                      arch="cnn")  # fmt: skip
    R = a.replicas
    print(f"cnn depth {a.depth}, width {a.width}, {'post residual' if a.residual else 'plain'}, "
          f"batch norm, relu, {a.data} {side}x{side}, batch {a.batch}, R={R}, threads "
          f"{a.threads}, {DEVICE}, torch {torch.__version__}")  # fmt: skip

    fns = {
        "batched (grouped convs)": lambda: batched_ms(cfg, R, a.batch, x, y, a.steps),
        "vmap (stack_module_state)": lambda: vmap_ms(cfg, R, a.batch, x, y, a.steps, side),
        "loop over replicas": lambda: loop_ms(cfg, R, a.batch, x, y, a.steps, side),
        "floor (convolutions alone)": lambda: floor_ms(cfg, R, a.batch, a.steps, side),
    }
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(a.repeats):  # interleaved rounds: a load that drifts hits all four alike
        for name, fn in fns.items():
            samples[name].append(fn())
    ms = {name: statistics.median(v) for name, v in samples.items()}
    for name, v in ms.items():
        print(f"{name:28s}: {v:8.2f} ms/step")
    b = ms["batched (grouped convs)"]
    print(f"vmap / batched  = {ms['vmap (stack_module_state)'] / b:5.2f} (goal >= 1.25)")
    print(f"loop / batched  = {ms['loop over replicas'] / b:5.2f}")
    print(f"batched / floor = {b / ms['floor (convolutions alone)']:5.2f} (goal <= 2)")


if __name__ == "__main__":
    main()
