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
        self.residual = cfg.residual
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (lin, norm) in enumerate(zip(self.linears[:-1], self.norms, strict=True)):
            y = self.act(norm(lin(x)))
            x = x + y if (self.residual and i > 0) else y
        return self.linears[-1](x)
