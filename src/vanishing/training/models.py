"""A batch of R independent MLPs that train as one model.

Every parameter carries a leading replica dimension R, so one batched matrix product serves all
replicas of a cell (seeds x learning rates). For these tiny models per-operation overhead, not
arithmetic, dominates the step time; batching divides it by R.

``depth`` counts hidden weight layers; each has one Linear, h_l = x_{l-1} W_l + b_l (R, B,
width), the pre-activation probed as ``grad_preact_rms``. Layer 1 (the stem) changes the width
(input_dim -> width) and is the same in every net: x_1 = phi(norm(h_1)), norm being identity,
batch norm or layer norm (the post-norm order of Ioffe & Szegedy 2015). A plain net repeats the
stem. In a residual net every later layer l = 2..depth is one block whose branch holds the
layer's Linear (one linear layer per branch, so depth still counts weight layers) and whose
skip is the identity, the branch scaled by alpha (``model.residual_scale``):

    pre        x_l = x_{l-1} + alpha * h_l,  h_l = phi(norm(x_{l-1})) W_l + b_l
    post       x_l = phi(x_{l-1} + alpha * norm(h_l)),  h_l = x_{l-1} W_l + b_l
    branch_act x_l = x_{l-1} + alpha * phi(norm(h_l)),  h_l = x_{l-1} W_l + b_l

``pre`` is the pre-activation unit of He et al. (2016b, "Identity mappings"): norm ->
activation -> Linear in the branch and nothing after the sum, so the path from the top to the
stem is the identity. ``post`` is the original unit of He et al. (2016): the branch ends in its
(last) Linear and the norm, and the activation follows the sum. Both branches end in a Linear
(and norm) with zero-mean weights, so they are centred at init. ``branch_act`` is the study's
first block, kept as a control: its branch ends in the activation, non-negative for relu and
gelu, so every block adds a mean to the stream (a deep relu net without a norm explodes at init
even with alpha = 1/sqrt(depth); see docs/theory.md). The classifier reads x_depth: no final
norm-activation (He et al. 2016b put one there), so that its input is the stream itself in
every block. ``x_l`` is the residual stream probed as ``stream_rms`` and ``grad_stream_rms``.

alpha: a number, 1/sqrt(depth) (``inv_sqrt_depth``: each block then adds O(1/depth) to the
variance), or a learnable scalar per block and replica: ``skipinit`` starts it at 0 (SkipInit,
De & Smith 2020; ReZero, Bachlechner et al. 2021: every block is the identity at init);
``fixup`` starts it at 1 and the branch's Linear (W_l and b_l) at 0 (Fixup, Zhang et al. 2019,
for one-layer branches: its rescaling of the branch's inner layers, L^(-1/(2m-2)), has no layer
to act on when m = 1, and the zero classifier and scalar biases are left out: a zero
classifier makes every hidden gradient exactly 0 at step 0, leaving nothing to probe).

Replicas never interact: batch-norm statistics are per replica, and the loss of the batch is the
sum of the replicas' own mean losses, so each replica's gradient is its own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from vanishing import activations
from vanishing.config import ModelConfig
from vanishing.inits import bias_variance, uniform_bound, weight_variance
from vanishing.settings import FIXUP, LEARNED_SCALES
from vanishing.training.norms import (
    BatchNorm,
    LayerNorm,
    batch_norm_eval,
    update_running_stats,
)

BN_MOMENTUM = 0.1  # as torch.nn.BatchNorm1d


def _resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def activation_fns(name: str):
    """(phi, in-place phi) of a registered activation. The in-place form is used when nothing
    else needs the activation's input: its backward needs only its output, and the op before
    it (a matrix product or a norm) does not need its own; without one, phi serves both."""
    spec = activations.get(name)
    phi = _resolve(spec.torch)
    return phi, _resolve(spec.torch_inplace) if spec.torch_inplace else phi


def replica_seeds(seed: int) -> tuple[int, int]:
    """(init seed, data-order seed) of a run, two independent streams derived from its seed."""
    init, order = np.random.SeedSequence(seed).generate_state(2, dtype=np.uint32)
    return int(init), int(order)


def draw_linear(
    gen: torch.Generator,
    scheme: str,
    fan_in: int,
    fan_out: int,
    sw2: float | str = "auto",
    sb2: float | str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (fan_in, fan_out) and bias (fan_out,) of one replica's layer under ``scheme``,
    with Var(W) * fan_in = ``sw2`` and Var(b) = ``sb2`` where those are numbers (``inits``).

    ``pytorch`` draws uniforms, the Gaussian schemes normals, ``orthogonal`` a (semi-)orthogonal
    matrix times the gain g with g^2 = sw2 * max(fan_in, fan_out) / fan_in, so that the mean of
    W_ij^2 is sw2 / fan_in as for the others (gain 1: 1 / max(fan_in, fan_out)). Biases are
    normal (uniform for ``pytorch``); a zero variance draws nothing, so ``auto`` and the
    scheme's own numbers consume the generator alike. The weight is drawn as nn.Linear lays it
    out (fan_out, fan_in) and returned transposed, so the same generator state gives the same
    matrix as ``nn.Linear`` initialised in place.
    """
    w = torch.empty(fan_out, fan_in)
    b = torch.zeros(fan_out)
    var_w = weight_variance(scheme, fan_in, fan_out, sw2)
    var_b = bias_variance(scheme, fan_in, sb2)
    if scheme == "pytorch":
        nn.init.uniform_(w, -uniform_bound(var_w), uniform_bound(var_w), generator=gen)
        bound = uniform_bound(var_b)
        nn.init.uniform_(b, -bound, bound, generator=gen)
    elif scheme in ("xavier", "kaiming", "lecun", "orthogonal"):
        if scheme == "orthogonal":
            nn.init.orthogonal_(w, gain=(var_w * max(fan_in, fan_out)) ** 0.5, generator=gen)
        else:
            nn.init.normal_(w, 0.0, var_w**0.5, generator=gen)
        if var_b > 0:
            nn.init.normal_(b, 0.0, var_b**0.5, generator=gen)
    else:
        raise ValueError(f"unknown init scheme {scheme!r}")
    return w.t().contiguous(), b


def skip_add(x: torch.Tensor, y: torch.Tensor, alpha: float | torch.Tensor) -> torch.Tensor:
    """x + alpha * y in one op (a new tensor); alpha a number or per replica (R, 1, 1)."""
    if isinstance(alpha, torch.Tensor):
        return torch.addcmul(x, y, alpha)
    return torch.add(x, y, alpha=alpha)


class ReplicaNet(nn.Module):
    """What every batch of R nets shares (``BatchedMLP``, ``BatchedCNN``, ``BatchedRNN``): each
    parameter's leading dimension is the replica, and a net with ``cfg.norm == "batch"`` keeps
    its batch-norm momentum in ``bn_momentum``."""

    cfg: ModelConfig
    bn_momentum: float = BN_MOMENTUM

    @torch.no_grad()
    def reestimate_batch_stats(self, x: torch.Tensor) -> None:
        """Set every batch-norm layer's running statistics to those of the whole of x (R, N, ...),
        one layer after another (a full-batch forward pass in training mode, momentum 1)."""
        if self.cfg.norm != "batch":
            return
        was_training, momentum = self.training, self.bn_momentum
        self.train()
        self.bn_momentum = 1.0
        try:
            self(x)
        finally:
            self.bn_momentum = momentum
            self.train(was_training)

    def sq_norms(self) -> torch.Tensor:
        """Squared L2 norm (R,) of each replica's parameters (for weight decay)."""
        return sum(p.pow(2).flatten(1).sum(1) for p in self.parameters())


class BatchedMLP(ReplicaNet):
    """R MLPs of one architecture; inputs (R, B, input_dim) -> logits (R, B, n_classes)."""

    def __init__(self, cfg: ModelConfig, input_dim: int, n_classes: int, seeds: list[int]):
        super().__init__()
        self.cfg = cfg
        self.n_replicas = R = len(seeds)
        self.gain = cfg.branch_gain
        self.block = cfg.block if cfg.residual else None
        learned = cfg.residual and cfg.residual_scale in LEARNED_SCALES
        self.act, self.act_ = activation_fns(cfg.activation)
        dims = [input_dim] + [cfg.width] * cfg.depth + [n_classes]
        sw2, sb2 = cfg.sigma_w2_resolved, cfg.sigma_b2
        ws: list[list[torch.Tensor]] = [[] for _ in range(cfg.depth + 1)]
        bs: list[list[torch.Tensor]] = [[] for _ in range(cfg.depth + 1)]
        zero = cfg.residual and cfg.residual_scale == FIXUP  # the blocks' Linear starts at 0
        for seed in seeds:
            gen = torch.Generator().manual_seed(replica_seeds(seed)[0])
            for i in range(cfg.depth + 1):
                w, b = draw_linear(gen, cfg.init_scheme, dims[i], dims[i + 1], sw2, sb2)
                if zero and 0 < i < cfg.depth:  # drawn all the same: one stream per seed
                    w, b = torch.zeros_like(w), torch.zeros_like(b)
                ws[i].append(w)
                bs[i].append(b)
        self.weights = nn.ParameterList([nn.Parameter(torch.stack(w)) for w in ws])  # (R,in,out)
        self.biases = nn.ParameterList([nn.Parameter(torch.stack(b)) for b in bs])  # (R, out)
        if learned:  # one scalar gain per block (layers 2..depth) and replica
            self.gains = nn.ParameterList(
                [nn.Parameter(torch.full((R,), self.gain)) for _ in range(cfg.depth - 1)]
            )
        if cfg.norm != "none":
            shape = (R, cfg.width)
            self.gammas = nn.ParameterList(
                [nn.Parameter(torch.ones(shape)) for _ in range(cfg.depth)]
            )
            self.betas = nn.ParameterList(
                [nn.Parameter(torch.zeros(shape)) for _ in range(cfg.depth)]
            )
        if cfg.norm == "batch":
            for i in range(cfg.depth):
                self.register_buffer(f"running_mean_{i}", torch.zeros(shape))
                self.register_buffer(f"running_var_{i}", torch.ones(shape))

    def _apply(self, fn, *args, **kwargs):
        self._layers = None  # .to() and friends may replace the buffers
        return super()._apply(fn, *args, **kwargs)

    def layers(self, replicas: slice | None = None) -> list[tuple]:
        """Per layer, the hidden ones then the classifier: (W, b, gamma, beta, running_mean,
        running_var, gain), None where a layer has no such tensor (gain: a block's learnable
        alpha (R,)); with ``replicas``, views of those replicas only. (Cached: looking
        parameters up by name costs more than some of the ops that use them.)"""
        if getattr(self, "_layers", None) is None:
            depth, norm = self.cfg.depth, self.cfg.norm
            none = [None] * depth
            gammas, betas = (self.gammas, self.betas) if norm != "none" else (none, none)
            stats = [
                [getattr(self, f"running_{s}_{i}") for i in range(depth)]
                if norm == "batch"
                else none
                for s in ("mean", "var")
            ]
            gains = [None, *self.gains] if hasattr(self, "gains") else none
            hidden = zip(
                self.weights[:depth], self.biases[:depth], gammas, betas, *stats, gains,
                strict=True,
            )  # fmt: skip
            top = (self.weights[depth], self.biases[depth], None, None, None, None, None)
            self._layers = [*hidden, top]
        if replicas is None:
            return self._layers
        return [tuple(t if t is None else t[replicas] for t in layer) for layer in self._layers]

    def normalize(self, layer: tuple, h: torch.Tensor, batch_stats: list | None, scratch: bool):
        """The norm of one hidden layer (a ``layers()`` entry) applied to its pre-activation h
        (R, B, width). With ``scratch`` the norm may overwrite h, and with batch norm h then
        excludes the Linear's bias, which the norm cancels (see ``norms.BatchNorm``); batch
        norm appends its batch statistics to ``batch_stats`` unless that is None."""
        _, bias, gamma, beta, running_mean, running_var, _ = layer
        if self.cfg.norm == "layer":
            return LayerNorm.apply(h, gamma, beta, scratch)
        bias = bias if scratch else None
        if not self.training:
            return batch_norm_eval(h, bias, gamma, beta, running_mean, running_var)
        return BatchNorm.apply(h, bias, gamma, beta, batch_stats, scratch)

    def forward(
        self,
        x: torch.Tensor,
        update_stats: bool = True,
        keep: bool | Callable[[int, torch.Tensor, torch.Tensor], None] = False,
        layers: list[tuple] | None = None,
        stream: Callable[[int, torch.Tensor], None] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Logits (R, B, n_classes). ``keep``: True to return also each layer's h_l and the
        activation's input (a_l = norm(h_l); in a ``pre`` block norm(x_{l-1}), in a ``post``
        block the sum) (R, B, width) in two lists; or a function, called with (l, h_l, a_l) as
        each layer makes them (l = 0 nearest the input) instead: nothing is kept, and
        afterwards the layer may overwrite them in place (a hook on h_l still sees dL/dh_l).
        ``stream``: a function called with (l, x_l), each layer's output (the residual
        stream), as it is made. ``layers``: ``self.layers(replicas)`` to run some replicas only
        (x holds those)."""
        preacts, acts = [], []
        *hidden, (w_out, b_out, *_) = self.layers() if layers is None else layers
        normed, block = self.cfg.norm != "none", self.block
        # batch norm cancels the bias: it goes to the norm instead of being added to every h
        # (not in pre blocks, whose norm acts on the stream, not on h)
        scratch = keep is not True
        fold = self.cfg.norm == "batch" and not keep and block != "pre"
        update = update_stats and self.cfg.norm == "batch" and self.training
        batch_stats = [] if update else None
        for i, layer in enumerate(hidden):
            kind = block if i > 0 else None  # the stem (and every layer of a plain net)
            alpha = self.gain if layer[6] is None else layer[6].view(-1, 1, 1)
            if kind == "pre":
                a = self.normalize(layer, x, batch_stats, False) if normed else x
                # in place only on the norm's fresh output, and not while a probe looks at a
                y = self.act_(a) if (normed and not keep) else self.act(a)
                h = torch.baddbmm(layer[1].unsqueeze(1), y, layer[0])  # (R, B, width)
            else:
                h = torch.bmm(x, layer[0])  # (R, B, width)
                if not fold:
                    h.add_(layer[1].unsqueeze(1))
                a = self.normalize(layer, h, batch_stats, scratch) if normed else h
                if kind == "post":
                    a = skip_add(x, a, alpha)  # the activation's input: the sum
            if keep is True:
                preacts.append(h)
                acts.append(a)
            elif keep:
                keep(i, h, a)
            if kind == "pre":
                x = skip_add(x, h, alpha)
            elif kind == "branch_act":
                y = self.act(a) if keep is True else self.act_(a)
                x = skip_add(x, y, alpha)
            else:
                x = self.act(a) if keep is True else self.act_(a)
            if stream is not None:
                stream(i, x)
        logits = torch.baddbmm(b_out.unsqueeze(1), x, w_out)
        if update:
            means, variances = ([layer[i] for layer in hidden] for i in (4, 5))
            biases = [layer[1] for layer in hidden] if fold else None
            n = x.shape[1]
            update_running_stats(means, variances, batch_stats, biases, n, self.bn_momentum)
        return logits, preacts, acts

    def layer_keys(self, layers: int) -> list[str]:
        """State-dict keys of the parameters of hidden layers 1..``layers`` (W, b, norm gains,
        learnable branch gains)."""
        keys = [f"weights.{i}" for i in range(layers)] + [f"biases.{i}" for i in range(layers)]
        if self.cfg.norm != "none":
            keys += [f"gammas.{i}" for i in range(layers)] + [f"betas.{i}" for i in range(layers)]
        if hasattr(self, "gains"):  # the blocks' learnable alphas (layer 1 has none)
            keys += [f"gains.{i}" for i in range(layers - 1)]
        return keys


def objective(
    net: BatchedMLP, x: torch.Tensor, y: torch.Tensor, weight_decay: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(training objective (R,), mean cross-entropy (R,)) of each replica on x (R,B,D), y (R,B).

    The objective adds 0.5 * weight_decay * ||theta_r||^2 (see ``optim``)."""
    logits, _, _ = net(x)
    ce = replica_losses(logits, y).mean(dim=1)
    if weight_decay:
        return ce + 0.5 * weight_decay * net.sq_norms(), ce
    return ce, ce


def replica_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example cross-entropy (R, B) from logits (R, B, K) and labels (R, B):
    logsumexp_k logits - logits[y], the value of ``F.cross_entropy`` (to float rounding) at a
    third of its cost here (PyTorch's log-softmax is slow for rows of 10 classes)."""
    return torch.logsumexp(logits, -1) - logits.gather(-1, y.unsqueeze(-1)).squeeze(-1)
