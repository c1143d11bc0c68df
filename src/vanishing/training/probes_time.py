"""Per-time-step probes of the recurrent nets on the fixed probe batch, every replica at once.

The loss is read at the last step T, so the gradient reaching step t has passed through T - t
applications of the recurrent Jacobian dh_{s+1}/dh_s: time is the depth. Each quantity has
shape (R, T), step 1 first, and goes into ``layer_gradients.csv`` with ``layer`` = the time step
(docs/recurrent.md):

- ``grad_preact_rms``: sqrt(mean_i ||dL/dh_t[i]||^2) of the state h_t (L = the probe batch's
  summed loss): the signal that vanishes through time. (For an MLP the column holds the
  pre-activation's gradient; for an Elman net the two differ by phi'(a_t), a factor that does
  not grow with T - t.)
- ``grad_weight_norm``: ||h_{t-1}^T dL/d(h_{t-1} W)||_F / P, step t's share of the recurrent
  matrix's gradient (dL/dW is their sum over t): what step t contributes to W's update;
- ``saturation``: the Elman net's phi input a_t (the gated nets': their tanh candidate's input)
  measured as the MLP probes measure it (``probes.saturation``); ``stuck`` likewise
  (``probes.stuck``: a unit stuck at step t has |phi'| < 1% of its maximum on every example);
- ``state_mean``, ``state_rms``: the forward state's moments, mean of h_t and sqrt(mean h_t^2)
  over examples and units.

The weight ledger (``probes.weight_stats``) is the recurrent matrix W's, one matrix shared by
all steps, so its values repeat in every step's row. Float32 underflow is handled as in the MLP
probes (``probes.frobenius``): a gradient reads 0 only when it underflowed float32 itself.
"""

from __future__ import annotations

import torch

from vanishing.training.models import replica_losses
from vanishing.training.probes import PROBE_BYTES, frobenius, unit_states
from vanishing.training.recurrent import BatchedRNN


def time_chunk(net: BatchedRNN, probe_size: int, max_bytes: int = PROBE_BYTES) -> int:
    """Replicas per probe pass: what autograd keeps per replica, about T * P * (G + 4) * H
    floats, times the replicas stays under ``max_bytes``; at least 1."""
    per = net.seq_len * probe_size * (net.gates + 4) * net.cfg.width * 4
    return max(1, min(net.n_replicas, max_bytes // per))


def measure_time(net: BatchedRNN, x, y, max_bytes: int = PROBE_BYTES) -> dict[str, torch.Tensor]:
    """Probe every replica on x (R, P, T * D), y (R, P): values (R, T) on the CPU."""
    R = y.shape[0]
    chunk = time_chunk(net, y.shape[1], max_bytes)
    parts = [_measure(net, x[r : r + chunk], y[r : r + chunk], slice(r, r + chunk))
             for r in range(0, R, chunk)]  # fmt: skip
    return {q: torch.cat([p[q] for p in parts]).cpu() for q in parts[0]}


def _measure(net: BatchedRNN, x, y, replicas: slice) -> dict[str, torch.Tensor]:
    n = x.shape[1]
    act = net.cfg.activation if net.cfg.arch == "rnn" else "tanh"
    kept: dict = {}
    with torch.enable_grad():
        logits, _, _ = net(x, keep=kept, replicas=replicas)
        total = replica_losses(logits, y).sum()
        grads = torch.autograd.grad(total, kept["state"] + kept["rec"], allow_unused=True)
    T = len(kept["state"])
    g_state, g_rec = grads[:T], grads[T:]
    with torch.no_grad():
        states = kept["state"]
        previous = [torch.zeros_like(states[0])] + states[:-1]  # h_{t-1}, h_0 = 0
        zero = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)

        def norm(g):
            return zero if g is None else frobenius(g)

        w_grad = [zero if g is None else frobenius(torch.bmm(p.transpose(1, 2), g)) / n
                  for p, g in zip(previous, g_rec, strict=True)]  # fmt: skip
        sq = torch.stack([h.pow(2).mean(dim=(1, 2)) for h in states], 1)
        units = [unit_states(act, a) for a in kept["cand"]]  # (saturation, stuck) per step
        return {
            "grad_preact_rms": torch.stack([norm(g) / n**0.5 for g in g_state], 1),
            "grad_weight_norm": torch.stack(w_grad, 1),
            "saturation": torch.stack([s for s, _ in units], 1),
            "stuck": torch.stack([k for _, k in units], 1),
            "state_mean": torch.stack([h.mean(dim=(1, 2)) for h in states], 1).double(),
            "state_rms": sq.sqrt().double(),
        }
