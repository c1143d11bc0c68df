"""A plain PyTorch reference of one replica (nn.Linear, nn.BatchNorm1d, nn.LayerNorm), built from
a batched model's parameters, to check the batched model against what PyTorch itself computes."""

from __future__ import annotations

import torch
from torch import nn

from vanishing.training.models import BatchedMLP

ACTS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}


class ReferenceMLP(nn.Module):
    """Replica ``r`` of ``batched`` as ordinary layers (the block order documented in models)."""

    def __init__(self, batched: BatchedMLP, r: int):
        super().__init__()
        cfg = batched.cfg
        self.residual, self.block = cfg.residual, cfg.block
        if hasattr(batched, "gains"):  # learnable branch gains (skipinit, fixup)
            self.alphas = nn.ParameterList(
                [nn.Parameter(g[r].detach().clone()) for g in batched.gains]
            )
        else:
            self.alphas = [batched.gain] * (cfg.depth - 1)
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i, (w, b) in enumerate(zip(batched.weights, batched.biases, strict=True)):
            lin = nn.Linear(w.shape[1], w.shape[2])
            with torch.no_grad():
                lin.weight.copy_(w[r].t())
                lin.bias.copy_(b[r])
            self.linears.append(lin)
            if i < cfg.depth and cfg.norm != "none":
                norm = nn.BatchNorm1d(cfg.width) if cfg.norm == "batch" else nn.LayerNorm(cfg.width)
                with torch.no_grad():
                    norm.weight.copy_(batched.gammas[i][r])
                    norm.bias.copy_(batched.betas[i][r])
                self.norms.append(norm)
            elif i < cfg.depth:
                self.norms.append(nn.Identity())
        self.act = ACTS[cfg.activation]()

    def forward(self, x: torch.Tensor, stream: list | None = None) -> torch.Tensor:
        """Logits; each layer's output x_l is appended to ``stream`` where one is given."""
        for i, (lin, norm) in enumerate(zip(self.linears[:-1], self.norms, strict=True)):
            x = self.layer(i, lin, norm, x)
            if stream is not None:
                stream.append(x)
        return self.linears[-1](x)

    def layer(self, i: int, lin, norm, x: torch.Tensor) -> torch.Tensor:
        if not self.residual or i == 0:
            return self.act(norm(lin(x)))
        alpha = self.alphas[i - 1]
        if self.block == "pre":
            return x + alpha * lin(self.act(norm(x)))
        if self.block == "post":
            return self.act(x + alpha * norm(lin(x)))
        return x + alpha * self.act(norm(lin(x)))  # branch_act
