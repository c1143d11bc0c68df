"""A batch of R independent recurrent nets that train as one model (``arch`` rnn, gru, lstm).

As ``BatchedMLP``: every parameter carries a leading replica dimension R, and one batched matrix
product per time step serves all replicas. A sequence arrives flat, (R, B, T * D), and is viewed
(R, B, T, D) (``vanishing.training.sequences``). With G gate blocks of H = width units:

    u_t = x_t U + b                          # (R, B, G*H): the input part, all steps at once
    Elman (rnn):  a_t = u_t + h_{t-1} W      h_t = phi(norm(a_t))
    gru:          [r, z, n] blocks;  r = sig(u_r + h W_r), z = sig(u_z + h W_z),
                  n = tanh(u_n + r * (h W_n)),  h_t = (1 - z) * n + z * h_{t-1}
    lstm:         [i, f, g, o] blocks;  c_t = sig(f) * c_{t-1} + sig(i) * tanh(g),
                  h_t = sig(o) * tanh(c_t)

h_0 = 0 (and c_0 = 0); the logits read the last state: h_T W_out + b_out. The GRU follows
PyTorch's ``nn.GRU`` equations (without its second bias b_hn), the LSTM ``nn.LSTM``'s.

Inits (see ``vanishing.recurrent``): W by ``init`` (Gaussian at sigma_w2, orthogonal, identity)
per gate block; U and W_out LeCun normal (Var * fan_in = 1); biases 0, Gaussian at sigma_b2 where
given, and the LSTM's forget-gate bias 1 (Gers et al. 2000; Jozefowicz et al. 2015), without
which its cell state starts by halving at every step.
"""

from __future__ import annotations

import torch
from torch import nn

from vanishing.config import ModelConfig
from vanishing.inits import resolve_init, weight_variance
from vanishing.recurrent import GATES
from vanishing.training.models import ReplicaNet, activation_fns, replica_seeds
from vanishing.training.norms import LayerNorm


def draw_recurrent(gen: torch.Generator, cfg: ModelConfig, gates: int) -> torch.Tensor:
    """One replica's recurrent matrix (H, gates * H): one H x H block per gate."""
    H = cfg.width
    scheme = "identity" if cfg.init == "identity" else resolve_init(cfg.init, cfg.activation)
    blocks = []
    for _ in range(gates):
        w = torch.empty(H, H)
        if scheme == "identity":
            nn.init.eye_(w)
        elif scheme == "orthogonal":
            nn.init.orthogonal_(w, gain=1.0, generator=gen)
        else:
            var = weight_variance(scheme, H, H) if cfg.sigma_w2 == "auto" else cfg.sigma_w2 / H
            nn.init.normal_(w, 0.0, var**0.5, generator=gen)
            blocks.append(w)
            continue
        if cfg.sigma_w2 != "auto":  # a given scale on a structured matrix
            w.mul_(float(cfg.sigma_w2) ** 0.5)
        blocks.append(w)
    return torch.cat(blocks, dim=1)


class BatchedRNN(ReplicaNet):
    """R recurrent nets of one architecture; inputs (R, B, T * D) -> logits (R, B, n_classes)."""

    def __init__(self, cfg: ModelConfig, input_dim: int, n_classes: int, seeds: list[int],
                 seq_len: int):  # fmt: skip
        """``input_dim``: the flat sequence's T * D (the registry's signature), seq_len T."""
        super().__init__()
        if cfg.depth != 1:
            raise NotImplementedError(f"{cfg.arch}: only depth 1 (one recurrent layer) is built")
        if input_dim % seq_len:
            raise ValueError(f"input_dim {input_dim} is not seq_len {seq_len} steps of inputs")
        self.cfg, self.seq_len, self.n_replicas = cfg, seq_len, len(seeds)
        self.gates = G = GATES[cfg.arch]
        H, D = cfg.width, input_dim // seq_len
        self.act, _ = activation_fns(cfg.activation) if cfg.arch == "rnn" else (torch.tanh, None)
        us, ws, bs, outs = [], [], [], []
        for seed in seeds:
            gen = torch.Generator().manual_seed(replica_seeds(seed)[0])
            ws.append(draw_recurrent(gen, cfg, G))
            us.append(torch.randn(D, G * H, generator=gen) / D**0.5)
            outs.append(torch.randn(H, n_classes, generator=gen) / H**0.5)
            b = torch.zeros(G * H)
            if cfg.sigma_b2 != "auto":
                b = torch.randn(G * H, generator=gen) * float(cfg.sigma_b2) ** 0.5
            if cfg.arch == "lstm":
                b[H : 2 * H] += 1.0  # forget gate
            bs.append(b)
        self.W = nn.Parameter(torch.stack(ws))  # (R, H, G*H)
        self.U = nn.Parameter(torch.stack(us))  # (R, D, G*H)
        self.b = nn.Parameter(torch.stack(bs))  # (R, G*H)
        self.w_out = nn.Parameter(torch.stack(outs))  # (R, H, K)
        self.b_out = nn.Parameter(torch.zeros(len(seeds), n_classes))  # (R, K)
        if cfg.norm == "layer":
            self.gamma = nn.Parameter(torch.ones(len(seeds), H))
            self.beta = nn.Parameter(torch.zeros(len(seeds), H))

    def forward(self, x: torch.Tensor, update_stats: bool = True, keep: dict | None = None,
                replicas: slice | None = None):  # fmt: skip
        """(logits (R, B, K), [], []), the MLP's signature. ``keep``: a dict that receives, per
        time step, lists ``state`` (h_t), ``cand`` (a_t, the Elman net's pre-activation after
        the norm, the gated nets' tanh-candidate input; both (R, B, H)) and ``rec`` (h_{t-1} W,
        (R, B, G*H)), all left in the graph for the probes to differentiate.
        ``replicas``: run those replicas only (x holds those)."""
        sel = slice(None) if replicas is None else replicas
        W, U, b = self.W[sel], self.U[sel], self.b[sel]
        R, B, _ = x.shape
        T, H = self.seq_len, self.cfg.width
        xs = x.reshape(R, B * T, -1)  # (R, B*T, D)
        u = torch.baddbmm(b.unsqueeze(1), xs, U).view(R, B, T, -1)  # (R, B, T, G*H)
        h = x.new_zeros(R, B, H)
        c = x.new_zeros(R, B, H) if self.cfg.arch == "lstm" else None
        if keep is not None:
            keep.update(state=[], cand=[], rec=[])
        for t in range(T):
            rec = torch.bmm(h, W)  # (R, B, G*H)
            h, c, a = self.cell(u[:, :, t], rec, h, c, sel)
            if keep is not None:
                keep["state"].append(h)
                keep["cand"].append(a)
                keep["rec"].append(rec)
        logits = torch.baddbmm(self.b_out[sel].unsqueeze(1), h, self.w_out[sel])
        return logits, [], []

    def cell(self, u, rec, h, c, sel):
        """One step: (h_t, c_t or None, the tanh/phi input a_t) from u_t, h_{t-1} W, h_{t-1}."""
        H, arch = self.cfg.width, self.cfg.arch
        if arch == "rnn":
            a = u + rec
            if self.cfg.norm == "layer":
                a = LayerNorm.apply(a, self.gamma[sel], self.beta[sel], False)
            return self.act(a), None, a
        if arch == "gru":
            rz = torch.sigmoid(u[..., : 2 * H] + rec[..., : 2 * H])
            r, z = rz[..., :H], rz[..., H:]
            a = u[..., 2 * H :] + r * rec[..., 2 * H :]
            n = torch.tanh(a)
            return n + z * (h - n), None, a
        i, f, g, o = (u + rec).split(H, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c, g

    def layers(self, replicas=None):
        return []

    def layer_keys(self, layers: int) -> list[str]:
        return []

    def reestimate_batch_stats(self, x: torch.Tensor) -> None:
        """Nothing to re-estimate: no batch norm in the recurrent nets."""
