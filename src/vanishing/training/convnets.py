"""A batch of R independent conv nets (plain, batch-norm, residual) that train as one model.

The nets of He et al. (2016, section 4.2, CIFAR): a 3x3 stem convolution, three stages of n
blocks of two 3x3 convolutions (``width``, 2 ``width`` and 4 ``width`` channels; the first conv
of stages 2 and 3 has stride 2), global average pooling and a linear classifier. Depth counts
the weighted layers as He et al. do: the stem, the 6n convolutions and the classifier,
depth = 6n + 2 (8, 20, 56, 110). Layer l = 1..depth - 1 of the probes is the l-th convolution
(h_l its output, the pre-activation), layer ``depth`` the classifier (h = the logits).

Per conv layer i, the norm N_i (identity, batch norm over examples and positions per channel,
or layer norm over channels and positions per example) follows it, and the order is that of the
``block`` setting when ``residual`` (alpha = ``residual_scale``; s = the block's shortcut):

- plain (no residual):  x = phi(N(conv x)) for every conv;
- ``post`` (He et al. 2016): x = phi(s + alpha N_2(conv_2 phi(N_1(conv_1 x))));
- ``pre`` (He et al. 2016b, "Identity mappings"): x = s + alpha conv_2 phi(N_2(conv_1 u)),
  u = phi(N(x)) the next conv's input; the norm after conv i then acts on the stream it feeds
  (the stem's output, each block's sum; the last one is the final norm before pooling);
- ``branch_act``: x = s + alpha phi(N_2(conv_2 phi(N_1(conv_1 x)))), the branch ending in
  the activation (the MLPs' old block, a control).

The shortcut is the identity, or where a stage starts, option A of He et al.: every other
position, the new channels zero (parameter-free, so depth and the count of layers agree).

Replicas: the activations are laid out (B, R * C, H, W) and every convolution is one grouped
convolution (groups = R), every norm one ``F.batch_norm`` / ``F.group_norm`` over R * C
channels, whose per-channel statistics are per replica. Inputs and logits are (R, B, ...) as
for the MLPs; the flat pixels of a square 1-channel image are reshaped here. The activations are
held channels-last in memory (NHWC), which the CPU kernels run faster.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vanishing.architectures import conv_specs
from vanishing.config import ModelConfig
from vanishing.inits import bias_variance, conv_weight_variance, uniform_bound
from vanishing.training.models import ReplicaNet, activation_fns, draw_linear, replica_seeds

KERNEL = 3
EPS = 1e-5


def draw_conv(gen: torch.Generator, scheme: str, c_in: int, c_out: int, sigma_w2, sigma_b2):
    """Kernel (c_out, c_in, 3, 3) and bias (c_out,) of one replica's conv under ``scheme``,
    fan-in c_in * 9 and fan-out c_out * 9 (as PyTorch counts them). ``delta_orthogonal``
    (Xiao et al. 2018): zero but for the centre tap, an orthogonal (c_out, c_in) matrix.
    A number ``sigma_w2`` rescales the kernel to Var(W) * fan_in = sigma_w2 (its scheme's
    shape kept); a number ``sigma_b2`` draws the bias from N(0, sigma_b2)."""
    fan_in = c_in * KERNEL**2
    w = torch.zeros(c_out, c_in, KERNEL, KERNEL)
    b = torch.zeros(c_out)
    var_w = conv_weight_variance(scheme, c_in, c_out, KERNEL)
    if scheme == "pytorch":
        nn.init.uniform_(w, -uniform_bound(var_w), uniform_bound(var_w), generator=gen)
        bound = uniform_bound(bias_variance(scheme, fan_in))
        nn.init.uniform_(b, -bound, bound, generator=gen)
    elif scheme in ("xavier", "kaiming", "lecun"):
        nn.init.normal_(w, 0.0, var_w**0.5, generator=gen)
    elif scheme == "orthogonal":
        nn.init.orthogonal_(w, gain=1.0, generator=gen)
    elif scheme == "delta_orthogonal":
        centre = torch.empty(c_out, c_in)
        nn.init.orthogonal_(centre, gain=1.0, generator=gen)
        w[:, :, KERNEL // 2, KERNEL // 2] = centre
    else:
        raise ValueError(f"unknown init scheme {scheme!r}")
    if sigma_w2 != "auto":
        w.mul_(math.sqrt(float(sigma_w2) / (var_w * fan_in)))
    if sigma_b2 != "auto":
        nn.init.normal_(b, 0.0, float(sigma_b2) ** 0.5, generator=gen)
    return w, b


class BatchedCNN(ReplicaNet):
    """R conv nets of one architecture; flat images (R, B, side^2) -> logits (R, B, n_classes)."""

    def __init__(self, cfg: ModelConfig, input_dim: int, n_classes: int, seeds: list[int]):
        super().__init__()
        self.side = math.isqrt(input_dim)
        if self.side**2 != input_dim:
            raise ValueError(f"a cnn reads square 1-channel images; {input_dim} pixels are not")
        self.cfg, self.n_replicas = cfg, len(seeds)
        self.specs = conv_specs(cfg.depth, cfg.width)
        self.gain = cfg.branch_gain if cfg.residual else 1.0
        self.act, _ = activation_fns(cfg.activation)
        scheme, top = cfg.init_scheme, self.specs[-1][1]
        linear_scheme = "orthogonal" if scheme == "delta_orthogonal" else scheme
        ws: list[list[torch.Tensor]] = [[] for _ in range(len(self.specs) + 1)]
        bs: list[list[torch.Tensor]] = [[] for _ in range(len(self.specs) + 1)]
        for seed in seeds:
            gen = torch.Generator().manual_seed(replica_seeds(seed)[0])
            for i, (c_in, c_out, _) in enumerate(self.specs):
                w, b = draw_conv(gen, scheme, c_in, c_out, cfg.sigma_w2, cfg.sigma_b2)
                ws[i].append(w)
                bs[i].append(b)
            w, b = draw_linear(gen, linear_scheme, top, n_classes)  # (top, K), (K,)
            ws[-1].append(w)
            bs[-1].append(b)
        self.weights = nn.ParameterList([nn.Parameter(torch.stack(w)) for w in ws])
        self.biases = nn.ParameterList([nn.Parameter(torch.stack(b)) for b in bs])
        channels = [c_out for _, c_out, _ in self.specs]
        R = self.n_replicas
        if cfg.norm != "none":
            self.gammas = nn.ParameterList([nn.Parameter(torch.ones(R, c)) for c in channels])
            self.betas = nn.ParameterList([nn.Parameter(torch.zeros(R, c)) for c in channels])
        if cfg.norm == "batch":
            for i, c in enumerate(channels):
                self.register_buffer(f"running_mean_{i}", torch.zeros(R, c))
                self.register_buffer(f"running_var_{i}", torch.ones(R, c))

    def _apply(self, fn, *args, **kwargs):
        self._layers = None  # .to() and friends may replace the buffers
        return super()._apply(fn, *args, **kwargs)

    def layers(self, replicas: slice | None = None) -> list[tuple]:
        """Per layer, the convs then the classifier (``depth`` entries): (W, b, gamma, beta,
        running_mean, running_var), None where a layer has none; with ``replicas``, views."""
        if getattr(self, "_layers", None) is None:
            n, norm = len(self.specs), self.cfg.norm
            none = [None] * n
            gammas, betas = (self.gammas, self.betas) if norm != "none" else (none, none)
            stats = [
                [getattr(self, f"running_{s}_{i}") for i in range(n)] if norm == "batch" else none
                for s in ("mean", "var")
            ]
            convs = zip(self.weights[:n], self.biases[:n], gammas, betas, *stats, strict=True)
            self._layers = [*convs, (self.weights[n], self.biases[n], None, None, None, None)]
        if replicas is None:
            return self._layers
        return [tuple(t if t is None else t[replicas] for t in layer) for layer in self._layers]

    def units(self, probe_size: int) -> int:
        """Activations one replica's probe pass holds per example set (for ``probe_chunk``)."""
        side, total = self.side, 0
        for _, c_out, stride in self.specs:
            side = (side - 1) // stride + 1
            total += c_out * side * side
        return total

    def _norm(self, layer: tuple, h: torch.Tensor, R: int, update: bool) -> torch.Tensor:
        _, _, gamma, beta, mean, var = layer
        if self.cfg.norm == "none":
            return h
        if self.cfg.norm == "layer":
            return F.group_norm(h, R, gamma.reshape(-1), beta.reshape(-1), EPS)
        if self.training:  # batch statistics; the running ones move only when ``update``
            mean, var = (mean.view(-1), var.view(-1)) if update else (None, None)
            return F.batch_norm(h, mean, var, gamma.reshape(-1), beta.reshape(-1), True,
                                self.bn_momentum, EPS)  # fmt: skip
        return F.batch_norm(h, mean.view(-1), var.view(-1), gamma.reshape(-1), beta.reshape(-1),
                            False, 0.0, EPS)  # fmt: skip

    def forward(
        self,
        x: torch.Tensor,
        update_stats: bool = True,
        keep: bool | Callable[[int, torch.Tensor, torch.Tensor | None], None] = False,
        layers: list[tuple] | None = None,
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Logits (R, B, n_classes) of flat images x (R, B, side^2). ``keep``: True to return
        each layer's h_l (R, B, C, H, W) and a_l (R, B, C * H * W: the input of the activation
        that follows conv l; None for the classifier); or a function called with (l, h_l, a_l)
        as they are made (a hook on h_l sees dL/dh_l). ``layers``: ``self.layers(replicas)``."""
        layers = self.layers() if layers is None else layers
        R, B = x.shape[:2]
        cfg, phi = self.cfg, self.act
        update = update_stats and self.training and cfg.norm == "batch"
        preacts, acts = [], []
        watch = keep is True or callable(keep)

        def conv(i: int, u: torch.Tensor) -> torch.Tensor:
            w, b = layers[i][:2]  # (R, C_out, C_in, 3, 3), (R, C_out)
            h = F.conv2d(u, w.flatten(0, 1), b.reshape(-1), self.specs[i][2], 1, 1, R)
            if not watch:
                return h
            view = h.unflatten(1, (R, -1)).transpose(0, 1)  # (R, B, C, H, W), h's memory
            self._seen = (i, view)
            return view.transpose(0, 1).flatten(1, 2)  # h again, through the view (hooks)

        def norm(i: int, h: torch.Tensor) -> torch.Tensor:
            return self._norm(layers[i], h, R, update)

        def mark(a: torch.Tensor) -> torch.Tensor:
            """a: the input of the activation after the last conv (B, R * C, H, W)."""
            if watch:
                i, view = self._seen
                record(i, view, a.unflatten(1, (R, -1)).transpose(0, 1).reshape(R, B, -1))
            return a

        def record(i, h, a):
            if keep is True:
                preacts.append(h)
                acts.append(a)
            else:
                keep(i, h, a)

        img = x.transpose(0, 1).reshape(B, R, self.side, self.side)  # (B, R * 1, side, side)
        # channels-last (NHWC) layout throughout: PyTorch's CPU batch norm and grouped
        # convolutions take 18% less time per step this way (benchmarks/conv_step.py)
        img = img.contiguous(memory_format=torch.channels_last)
        if not cfg.residual:
            u = img
            for i in range(len(self.specs)):
                u = phi(mark(norm(i, conv(i, u))))
        else:
            u = self._residual(img, conv, norm, mark, R)
        feats = u.mean(dim=(2, 3)).view(B, R, -1).transpose(0, 1)  # (R, B, C)
        w_out, b_out = layers[-1][:2]
        logits = torch.baddbmm(b_out.unsqueeze(1), feats, w_out)  # (R, B, K)
        if watch:
            record(len(self.specs), logits, None)
        return logits, preacts, acts

    def _residual(self, img, conv, norm, mark, R) -> torch.Tensor:
        """The stem and the residual blocks of ``cfg.block``; returns the pooled layer's input."""
        block, gain, phi = self.cfg.block, self.gain, self.act
        if block == "pre":
            x = conv(0, img)
            u = phi(mark(norm(0, x)))
        else:
            x = u = phi(mark(norm(0, conv(0, img))))
        for i in range(1, len(self.specs), 2):
            _, c_out, stride = self.specs[i]
            s = shortcut(x, stride, c_out, R)
            v = phi(mark(norm(i, conv(i, u))))
            h = conv(i + 1, v)
            if block == "pre":
                x = s + gain * h
                u = phi(mark(norm(i + 1, x)))
            elif block == "post":
                x = u = phi(mark(s + gain * norm(i + 1, h)))
            else:  # branch_act
                x = u = s + gain * phi(mark(norm(i + 1, h)))
        return u

    def layer_keys(self, layers: int) -> list[str]:
        """State-dict keys of the parameters of layers 1..``layers`` (W, b, norm gains)."""
        keys = [f"{p}.{i}" for p in ("weights", "biases") for i in range(layers)]
        if self.cfg.norm != "none":
            n = min(layers, len(self.specs))
            keys += [f"{p}.{i}" for p in ("gammas", "betas") for i in range(n)]
        return keys


def shortcut(x: torch.Tensor, stride: int, c_out: int, R: int) -> torch.Tensor:
    """Option A of He et al. (2016): x (B, R * C, H, W) itself, or where a stage starts every
    other position with c_out - C zero channels appended per replica."""
    if stride == 1 and x.shape[1] == R * c_out:
        return x
    y = x[:, :, ::stride, ::stride].unflatten(1, (R, -1))  # (B, R, C, H', W')
    y = F.pad(y, (0, 0, 0, 0, 0, c_out - y.shape[2]))
    return y.flatten(1, 2)
