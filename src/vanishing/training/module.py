"""Training one cell: all its replicas (seeds x learning rates) as one batched Lightning model.

Each replica keeps what it would have alone: its initialisation (from its seed), its data order
(from its seed, an independent stream), its learning rate and optimizer state, its batch-norm
statistics, its probes, and its divergence: a replica whose loss turns NaN or infinite is frozen
and recorded as diverged at that step while the others go on.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.environments import SLURMEnvironment
from torch.utils.data import DataLoader, IterableDataset

from vanishing import architectures
from vanishing.config import Cell
from vanishing.training.data import Splits
from vanishing.training.jacobian import measure_isometry
from vanishing.training.models import BatchedMLP, objective, replica_losses, replica_seeds
from vanishing.training.optim import freeze_replica, layer_blocks, make_optimizer
from vanishing.training.probes import QUANTITIES, is_probe_step, measure, weight_stats
from vanishing.training.probes_time import measure_time
from vanishing.training.recurrent import BatchedRNN

log = logging.getLogger(__name__)


class ReplicaBatches(IterableDataset):
    """Yields one (R, batch_size) tensor of training-row indices per step; each replica draws a
    fresh permutation every epoch from its own generator (the last partial batch is dropped)."""

    def __init__(self, n: int, batch_size: int, order_seeds: list[int]):
        if batch_size > n:
            raise ValueError(f"train.batch_size={batch_size} exceeds the {n} training examples")
        self.n, self.batch_size = n, batch_size
        self.gens = [torch.Generator().manual_seed(s) for s in order_seeds]

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __iter__(self):
        perms = torch.stack([torch.randperm(self.n, generator=g) for g in self.gens])  # (R, N)
        for k in range(len(self)):
            yield perms[:, k * self.batch_size : (k + 1) * self.batch_size]


@dataclass
class History:
    """What a cell's training produced, per replica (lists indexed like the replicas)."""

    probes: list[tuple[int, dict[str, np.ndarray]]] = field(default_factory=list)  # step, (R, L)
    curves: list[tuple[int, int, np.ndarray, np.ndarray]] = field(default_factory=list)
    diverged_step: list[int | None] = field(default_factory=list)
    step_losses: list[torch.Tensor] = field(default_factory=list)  # per step, (R,) on device
    final: dict[str, np.ndarray] = field(default_factory=dict)  # see CellModule.final_evaluation
    isometry: dict[str, np.ndarray] = field(default_factory=dict)  # step 0, (R,): jacobian.py
    probe_seconds: float = 0.0
    eval_seconds: float = 0.0
    # CPU seconds of the process over the same span as fit_cell's wall seconds: on a machine
    # shared with other jobs the wall time stretches, the CPU time much less
    fit_cpu_seconds: float = 0.0


def build_net(cell: Cell, splits: Splits, seeds: list[int]):
    """The cell's batched model, the class its architecture's registry entry names; a net over
    sequences is told their length (``data.seq_len``: input_dim / seq_len inputs per step)."""
    arch = architectures.get(cell.model.arch)
    args = (cell.model, splits.input_dim, splits.n_classes, seeds)
    if arch.inputs == "sequences":
        return arch.model_class()(*args, seq_len=cell.data.seq_len)
    return arch.model_class()(*args)


class CellModule(pl.LightningModule):
    """The Lightning side of one cell: the training step, divergence bookkeeping, evaluation."""

    def __init__(self, cell: Cell, splits: Splits, seeds: list[int], lrs: list[float]):
        super().__init__()
        self.cell, self.splits, self.lrs = cell, splits, torch.tensor(lrs, dtype=torch.float32)
        self.net = build_net(cell, splits, seeds)
        # every parameter and buffer at step 0: what the probes measure distances from and what
        # the layer reset restores
        self.init_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        self.probed_weights: list[torch.Tensor] | None = None  # hidden W_l at the last probe
        self.history = History(diverged_step=[None] * len(seeds))
        self.active = torch.ones(len(seeds), dtype=torch.bool)  # on the host, as of ``settle``
        # the step's three calls written out (as Lightning's automatic optimization makes them,
        # in the same order) cost less per step than its closure and hooks
        self.automatic_optimization = False

    def on_fit_start(self) -> None:
        self.init_state = {k: v.to(self.device) for k, v in self.init_state.items()}
        self.data = self.splits.to(self.device)
        R = len(self.active)
        idx = self.data.probe
        x, y = self.data.x_train[idx], self.data.y_train[idx]  # (P, D), (P,)
        self.probe_batch = (x.expand(R, -1, -1), y.expand(R, -1))  # the same for every replica
        # input features that vary over the training data (others give layer 1 no gradient)
        # (a conv net's first kernels see every pixel's neighbourhood: none left out there)
        x_train = self.data.x_train
        flat = not architectures.get(self.cell.model.arch).conv
        self.live_inputs = (x_train != x_train[:1]).any(dim=0) if flat else None
        # divergence is tracked on the device, so that no step waits for the host: a replica
        # is live until its loss is first non-finite (``died_at`` holds that step, else -1)
        self.live = self.active.to(self.device, copy=True)
        self.died_at = torch.full((R,), -1, dtype=torch.long, device=self.device)
        self.epoch_loss = torch.zeros(R, device=self.device)

    def configure_optimizers(self):
        t = self.cell.train
        named = list(self.net.named_parameters())
        opt, weights = make_optimizer(t.optimizer, [p for _, p in named], self.lrs, t.momentum,
                                      t.adam_eps, layer_blocks(named))  # fmt: skip
        self.loss_weights = weights.to(self.device)
        return opt

    def training_step(self, idx: torch.Tensor, batch_idx: int) -> None:
        R, B = idx.shape
        rows = idx.reshape(-1)
        x = self.data.x_train.index_select(0, rows).view(R, B, -1)  # (R, B, D)
        y = self.data.y_train.index_select(0, rows).view(R, B)
        loss_r, ce = objective(self.net, x, y, self.cell.train.weight_decay)  # (R,), (R,)
        finite = torch.isfinite(loss_r)
        self.died_at.masked_fill_(self.live & ~finite, self.global_step)
        self.live.logical_and_(finite)
        zero = torch.zeros_like(loss_r)
        live_ce = torch.where(self.live, ce.detach(), zero)
        self.epoch_loss.add_(live_ce)
        self.history.step_losses.append(live_ce)
        loss = (torch.where(self.live, loss_r, zero) * self.loss_weights).sum()
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()

    def settle(self) -> None:
        """Bring the host's record up to the device's: every replica that died since the last
        call is recorded as diverged at its step and frozen (its parameters and optimizer
        state zeroed, its loss weight 0). Until then its loss was already masked, so nothing
        it computed reached the others or the records. Called before each probe, each
        validation and at the end (one host-device sync each, not one per step)."""
        live = self.live.cpu()
        dead = torch.nonzero(self.active & ~live).flatten().tolist()
        if not dead:
            return
        died_at = self.died_at.cpu()
        opt = self.optimizers().optimizer if self._trainer is not None else None
        for r in dead:
            self.history.diverged_step[r] = int(died_at[r])
            self.active[r] = False
            if opt is not None:
                freeze_replica(opt, r)
            self.loss_weights[r] = 0.0
        log.warning(
            "%s: replicas %s diverged at steps %s",
            self.cell.name,
            dead,
            [self.history.diverged_step[r] for r in dead],
        )

    def on_train_epoch_end(self) -> None:
        self.settle()
        steps = self.trainer.num_training_batches
        train_loss = (self.epoch_loss / steps).cpu().numpy()
        self.epoch_loss.zero_()
        t0 = time.perf_counter()
        val = self.accuracy(self.data.x_val, self.data.y_val)
        self.history.eval_seconds += time.perf_counter() - t0
        mask = self.active.numpy()
        train_loss[~mask], val[~mask] = np.nan, np.nan
        self.history.curves.append((self.current_epoch + 1, self.global_step, train_loss, val))
        log.info(
            "%s epoch %d/%d: train_loss %.4g, val_accuracy %.3f (mean over %d live replicas)",
            self.cell.name,
            self.current_epoch + 1,
            self.trainer.max_epochs,
            np.nanmean(train_loss) if mask.any() else np.nan,
            np.nanmean(val) if mask.any() else np.nan,
            mask.sum(),
        )

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Per-replica (mean loss, accuracy) on one split, in eval mode (running BN statistics)."""
        was_training = self.net.training
        self.net.eval()
        R = len(self.active)
        logits, _, _ = self.net(x.unsqueeze(0).expand(R, -1, -1))
        labels = y.unsqueeze(0).expand(R, -1)
        loss = replica_losses(logits, labels).mean(dim=1)
        acc = (logits.argmax(-1) == labels).float().mean(dim=1)
        self.net.train(was_training)
        return loss.cpu().numpy(), acc.cpu().numpy()

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        return self.evaluate(x, y)[1]

    def on_fit_end(self) -> None:
        self.settle()
        t0 = time.perf_counter()
        self.history.final = self.final_evaluation()
        self.history.eval_seconds += time.perf_counter() - t0

    def final_evaluation(self) -> dict[str, np.ndarray]:
        """Per replica (R,): ``final_train_loss``, ``final_val_accuracy``,
        ``final_test_accuracy`` in eval mode after the last step (NaN for a diverged replica),
        ``best_val_accuracy`` over the per-epoch validations, and the layer reset's
        (``reset_evaluation``). All NaN for a profile at init (epochs 0): nothing trained."""
        d, dead = self.data, ~self.active.numpy()
        if self.cell.train.epochs == 0:  # a profile at init: nothing trained, nothing to measure
            nan = np.full(len(dead), np.nan)
            names = ("final_train_loss", "final_val_accuracy", "final_test_accuracy",
                     "best_val_accuracy", "reset_train_loss", "reset_test_accuracy")  # fmt: skip
            out = {k: nan.copy() for k in names}
            out["reset_layers"] = np.full(len(dead), float(self.cell.model.depth // 2))
            return out
        train_loss, _ = self.evaluate(d.x_train, d.y_train)
        out = {
            "final_train_loss": train_loss.astype(np.float64),
            "final_val_accuracy": self.accuracy(d.x_val, d.y_val).astype(np.float64),
            "final_test_accuracy": self.accuracy(d.x_test, d.y_test).astype(np.float64),
        }
        for v in out.values():
            v[dead] = np.nan
        val = [c[3] for c in self.history.curves]  # per epoch, (R,)
        curves = np.stack(val, axis=1) if val else np.full((len(dead), 1), np.nan)  # (R, epochs)
        seen = np.isfinite(curves).any(axis=1)
        best = np.full(len(seen), np.nan)
        best[seen] = np.nanmax(curves[seen], axis=1)
        out["best_val_accuracy"] = best
        out.update(self.reset_evaluation())
        return out

    @property
    def recurrent(self) -> bool:
        return isinstance(self.net, BatchedRNN)

    def hidden_weights(self) -> list[torch.Tensor]:
        """The weights the ledger follows, layers 1..depth: an MLP's hidden layers, a conv
        net's convolutions and its classifier, or a recurrent net's recurrent W."""
        if self.recurrent:
            return [self.net.W]
        return [layer[0] for layer in self.net.layers()[: self.cell.model.depth]]

    def init_weights(self) -> list[torch.Tensor]:
        if self.recurrent:
            return [self.init_state["W"]]
        return [self.init_state[f"weights.{i}"] for i in range(self.cell.model.depth)]

    def probe(self) -> dict[str, torch.Tensor]:
        """The probes' values on the probe batch, (R, layers) each; for a recurrent net
        (R, T), the recurrent W's ledger repeated at every step (``probes_time``)."""
        net, (x, y) = self.net, self.probe_batch
        weights = self.hidden_weights()
        live = None if self.recurrent else self.live_inputs
        ledger = weight_stats(weights, self.init_weights(), self.probed_weights, live)
        if self.probed_weights is None:
            self.probed_weights = [w.detach().clone() for w in weights]
        else:
            torch._foreach_copy_(self.probed_weights, [w.detach() for w in weights])
        if not self.recurrent:
            return {**measure(net, x, y), **ledger}
        values = measure_time(net, x, y)
        T = net.seq_len
        return {**values, **{k: v.expand(-1, T) for k, v in ledger.items()}}

    @torch.no_grad()
    def reset_evaluation(self) -> dict[str, np.ndarray]:
        """Per replica (R,): the training loss and test accuracy after resetting the lower half
        of the hidden layers (1..depth // 2: weights, biases, norm gains) to their values at
        step 0, the rest as trained (Zhang, Bengio & Singer 2019). If the lower layers learned
        nothing, nothing is lost. Batch-norm statistics are re-estimated on the training split
        for the reset network. NaN for one hidden layer (nothing to reset) and dead replicas."""
        k = self.cell.model.depth // 2
        R = len(self.active)
        nan = np.full(R, np.nan)
        out = {"reset_layers": np.full(R, float(k))}
        if k == 0:
            return {**out, "reset_train_loss": nan, "reset_test_accuracy": nan.copy()}
        trained = {n: t.clone() for n, t in self.net.state_dict().items()}
        lower = {n: self.init_state[n] for n in self.net.layer_keys(k)}
        self.net.load_state_dict({**trained, **lower})
        d = self.data
        self.net.reestimate_batch_stats(d.x_train.unsqueeze(0).expand(R, -1, -1))
        loss, _ = self.evaluate(d.x_train, d.y_train)
        acc = self.accuracy(d.x_test, d.y_test)
        self.net.load_state_dict(trained)
        dead = ~self.active.numpy()
        loss, acc = loss.astype(np.float64), acc.astype(np.float64)
        loss[dead], acc[dead] = np.nan, np.nan
        return {**out, "reset_train_loss": loss, "reset_test_accuracy": acc}


class GradientProbe(pl.Callback):
    """Probes at the steps ``probes.is_probe_step`` names (0, 1, 2, 4, ... below ``every``, then
    every ``every`` steps) and after the last step: gradients and how far the weights moved."""

    def __init__(self, every: int):
        self.every = every

    def record(self, module: CellModule) -> None:
        module.settle()
        t0 = time.perf_counter()
        values = module.probe()
        mlp = isinstance(module.net, BatchedMLP)  # the Jacobian is measured for MLPs
        if mlp and not module.history.isometry:  # the first probe: step 0
            iso = measure_isometry(module.net, module.probe_batch[0])
            module.history.isometry = {k: v.numpy() for k, v in iso.items()}
        dead = ~module.active.numpy()
        out = {}
        for q in QUANTITIES:
            if q not in values:  # a recurrent net's quantity in an MLP's table
                out[q] = np.full((len(dead), values["grad_preact_rms"].shape[1]), np.nan)
                continue
            v = values[q].numpy().astype(np.float64)
            v[dead] = np.nan
            out[q] = v
        module.history.probes.append((module.global_step, out))
        module.history.probe_seconds += time.perf_counter() - t0

    def on_train_batch_start(self, trainer, module, batch, batch_idx: int) -> None:
        if is_probe_step(trainer.global_step, self.every):
            self.record(module)

    def on_train_end(self, trainer, module) -> None:
        if not module.history.probes or module.history.probes[-1][0] != trainer.global_step:
            self.record(module)


class StepProgress(pl.Callback):
    """Tells a job's ``vanishing.progress.JobProgress`` of every step: the step and how many
    replicas are live and diverged (it decides when to report)."""

    def __init__(self, progress):
        self.progress = progress

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx: int) -> None:
        live = int(module.active.sum())
        self.progress.step(trainer.global_step, live, len(module.active) - live)


def quiet_lightning() -> None:
    """Silence Lightning's start-up banners and the data-loader hints that do not apply here."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*IterableDataset.*__len__.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*`srun` command is available.*")


def fit_cell(
    cell: Cell,
    splits: Splits,
    seeds: list[int] | None = None,
    lrs: list[float] | None = None,
    accelerator: str = "cpu",
    progress=None,
) -> tuple[CellModule, float]:
    """Train every replica (seeds[i], lrs[i]) of ``cell`` (by default ``cell.replicas()``);
    returns the module and the seconds inside ``trainer.fit``. ``progress`` (a
    ``vanishing.progress.JobProgress``) hears of every step."""
    if seeds is None or lrs is None:
        seeds, lrs = (list(x) for x in zip(*cell.replicas(), strict=True))
    quiet_lightning()
    pl.seed_everything(seeds[0], workers=True, verbose=False)
    module = CellModule(cell, splits, seeds, lrs)
    order_seeds = [replica_seeds(s)[1] for s in seeds]
    batches = ReplicaBatches(len(splits.y_train), cell.train.batch_size, order_seeds)
    plugins = []
    if SLURMEnvironment.detect():  # requeueing is Snakemake's business, not Lightning's
        plugins.append(SLURMEnvironment(auto_requeue=False))
    probe = GradientProbe(cell.train.probe_every)
    if cell.train.epochs == 0:  # a profile at initialisation: no Trainer, no step
        module.to(torch.device("cuda" if accelerator == "gpu" else "cpu"))
        t0, c0 = time.perf_counter(), time.process_time()
        module.on_fit_start()
        probe.record(module)
        module.on_fit_end()
        module.history.fit_cpu_seconds = time.process_time() - c0
        return module, time.perf_counter() - t0
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=1,
        max_epochs=cell.train.epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[probe] + ([StepProgress(progress)] if progress is not None else []),
        plugins=plugins,
    )
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    module.history.fit_cpu_seconds = time.process_time() - c0
    return module, time.perf_counter() - t0
