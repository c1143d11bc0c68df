"""Batch norm and layer norm of R replicas at once, with their backward written out.

Both act on a pre-activation h of shape (R, B, W) (replicas, examples, units) with per-replica
gains gamma and shifts beta of shape (R, W):

- batch norm: per replica and unit, over the batch, a = (h - mean_b h) / sqrt(var_b h + eps)
  * gamma + beta, with the biased variance (as ``nn.BatchNorm1d`` in training mode);
- layer norm: per replica and example, over the units, a = (h - mean_w h) /
  sqrt(var_w h + eps) * gamma + beta (as ``nn.LayerNorm(W)`` with replica r's gains).

Autograd through the elementary ops gives the same numbers, but for these small tensors each
op costs more in dispatch and memory traffic than in arithmetic (and ``torch.var_mean`` over
the batch dimension, or PyTorch's own layer-norm kernel for rows of 64, takes several times a
whole matrix product here); these functions make few passes over the (R, B, W) tensors and
allocate few new ones. With ``scratch`` the caller gives up h (the Linear's fresh output),
which is then centred in place. The formulas are the standard ones (Ioffe & Szegedy 2015;
Ba et al. 2016); ``tests/test_models.py`` checks them against ``nn.BatchNorm1d`` and
``nn.LayerNorm`` over 20 SGD steps.
"""

from __future__ import annotations

import torch

EPS = 1e-5


class BatchNorm(torch.autograd.Function):
    """Batch norm in training mode (batch statistics). With a list ``batch_stats`` it appends
    this layer's (mean, biased variance) over the batch, each (R, W), for
    ``update_running_stats``; None (the probes) records nothing.

    ``bias`` (R, W) or None: the Linear's bias when h excludes it. A bias cancels in
    (h + b) - mean_b (h + b), so the output and every gradient are those of h + b; it only
    shifts the running mean, and its own gradient is exactly 0 (returned as None)."""

    @staticmethod
    def forward(ctx, h, bias, gamma, beta, batch_stats, scratch: bool):
        n = h.shape[1]
        mean = h.mean(1, keepdim=True)  # (R, 1, W)
        d = h.sub_(mean) if scratch else h - mean  # (R, B, W)
        var = torch.linalg.vecdot(d, d, dim=1).div_(n)  # (R, W), biased
        if batch_stats is not None:
            batch_stats.append((mean.squeeze(1), var))
        rstd = var.add(EPS).rsqrt_().unsqueeze(1)  # (R, 1, W)
        scale = gamma.unsqueeze(1) * rstd
        ctx.save_for_backward(d, rstd, scale)
        return torch.addcmul(beta.unsqueeze(1), d, scale)

    @staticmethod
    def backward(ctx, g):
        # dh = scale * (g - mean_b g - xhat * mean_b (g * xhat)), xhat = d * rstd
        d, rstd, scale = ctx.saved_tensors
        n = d.shape[1]
        sum_g = g.sum(1, keepdim=True)  # (R, 1, W): d loss / d beta
        sum_gd = torch.linalg.vecdot(g, d, dim=1).unsqueeze(1)  # (R, 1, W)
        c_d = (scale * rstd).mul_(rstd).mul_(sum_gd).mul_(-1.0 / n)
        c_0 = (scale * sum_g).mul_(-1.0 / n)
        dh = torch.addcmul(c_0, g, scale).addcmul_(d, c_d)
        return dh, None, (sum_gd * rstd).squeeze(1), sum_g.squeeze(1), None, None


@torch.no_grad()
def update_running_stats(running_means, running_vars, batch_stats, biases, n: int, momentum):
    """Move every layer's running statistics (lists of (R, W)) towards its batch statistics
    (``BatchNorm``'s list; ``biases`` the Linear biases the batch means exclude, or None) by
    ``momentum``, the variance made unbiased (n / (n - 1)) as ``nn.BatchNorm1d`` keeps it.
    All layers in one call per statistic: the same numbers as layer by layer."""
    means, variances = (list(t) for t in zip(*batch_stats, strict=True))
    if biases is not None:
        means = torch._foreach_add(means, biases)
    torch._foreach_lerp_(running_means, means, momentum)
    torch._foreach_lerp_(running_vars, torch._foreach_mul(variances, n / (n - 1)), momentum)


def batch_norm_eval(h, bias, gamma, beta, running_mean, running_var):
    """Batch norm with the running statistics (eval mode): one fused multiply-add over h."""
    scale = gamma * torch.rsqrt(running_var + EPS)  # (R, W)
    mean = running_mean if bias is None else running_mean - bias
    return torch.addcmul((beta - mean * scale).unsqueeze(1), h, scale.unsqueeze(1))


class LayerNorm(torch.autograd.Function):
    """Layer norm over the units of each example, with per-replica gains (which
    ``F.layer_norm`` cannot take). The backward hands PyTorch's own kernel the normalised
    xhat with mean 0 and rstd 1, and scales its result by rstd."""

    @staticmethod
    def forward(ctx, h, gamma, beta, scratch: bool):
        n = h.shape[-1]
        mean = h.mean(-1, keepdim=True)  # (R, B, 1)
        d = h.sub_(mean) if scratch else h - mean  # (R, B, W)
        rstd = torch.linalg.vecdot(d, d, dim=-1).div_(n).add_(EPS).rsqrt_().unsqueeze(-1)
        xhat = d.mul_(rstd)
        ctx.save_for_backward(xhat, rstd, gamma)
        return torch.addcmul(beta.unsqueeze(1), xhat, gamma.unsqueeze(1))

    @staticmethod
    def backward(ctx, g):
        xhat, rstd, gamma = ctx.saved_tensors
        d_gamma = torch.linalg.vecdot(g, xhat, dim=1)  # (R, W)
        d_beta = g.sum(1)
        d_xhat = g * gamma.unsqueeze(1)
        zero, one = torch.zeros_like(rstd), torch.ones_like(rstd)
        mask = [True, False, False]
        dh = torch.ops.aten.native_layer_norm_backward(
            d_xhat, xhat, xhat.shape[-1:], zero, one, None, None, mask
        )[0]
        return dh.mul_(rstd), d_gamma, d_beta, None
