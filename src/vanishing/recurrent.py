"""The vocabulary of the recurrent nets (issue 18), and the rules a cell of one must keep.

Torch-free: the config expansion checks every cell with ``check_cell`` at load time, so a
setting the recurrent nets do not build fails before any job starts, naming the setting.

How the shared settings read for ``arch`` rnn, gru and lstm (``training/recurrent.py``):

- ``seq_len`` (T) is the depth in time: the net takes T steps and the loss is read at the
  last; ``depth`` is the number of stacked recurrent layers, and only 1 is built;
- ``activation`` is the Elman net's phi; the gated nets use sigmoid gates and a tanh candidate,
  so they take ``activation: tanh`` only;
- ``init`` sets the recurrent matrix W (H x H per gate): ``auto`` is the activation's scheme (as
  for MLPs), ``orthogonal``, or ``identity`` (the IRNN of Le, Jaitly & Hinton 2015, meant for
  relu; Elman nets only); ``sigma_w2`` (a number) draws W Gaussian with Var(W) * H = sigma_w2,
  or scales an orthogonal or identity W by sqrt(sigma_w2); ``sigma_b2`` the bias variance;
- ``norm``: ``layer`` normalises the Elman net's pre-activation at every step (Ba et al. 2016);
  ``batch`` is refused: batch norm through time needs statistics per time step (a net trained at
  T cannot run at another T) and mixes the examples of a batch inside the recurrence, which
  layer norm, per example, does not;
- ``residual`` must be false: the gated nets are the recurrent analogue of a skip connection
  (an additive path through the cell state).
"""

from __future__ import annotations

from vanishing.training.sequences import check_seq_len

RECURRENT = ("rnn", "gru", "lstm")
GATED = ("gru", "lstm")
GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # blocks of H columns in U and W


def is_recurrent(arch: str) -> bool:
    return arch in RECURRENT


def check_cell(values: dict) -> None:
    """Raise ValueError naming the setting when a cell's settings (by registry name) ask for
    something the recurrent nets or the sequence tasks do not build (their depth and the kind
    of data they read are the architecture registry's checks, ``architectures.check``)."""
    arch, data = values.get("arch", "mlp"), values.get("data", "digits")
    check_seq_len(data, int(values.get("seq_len", 0)))
    init = values.get("init", "auto")
    if not is_recurrent(arch):
        if init == "identity":
            raise ValueError("init 'identity' is the recurrent matrix's (IRNN): arch rnn only")
        return
    where = f"arch {arch!r}"  # depth and data kind: architectures.check
    if values.get("residual") in (True, "true"):
        raise ValueError(f"{where}: residual must be false (gating is the recurrent skip)")
    if values.get("norm") == "batch":
        raise ValueError(f"{where}: norm 'batch' through time is not built (see docs/recurrent.md)")
    if arch in GATED and values.get("norm") == "layer":
        raise ValueError(f"{where}: layer norm is built for the Elman net (rnn) only")
    if arch in GATED and values.get("activation") != "tanh":
        raise ValueError(f"{where}: the gated nets use sigmoid gates and tanh: activation tanh")
    if arch in GATED and init == "identity":
        raise ValueError(f"{where}: init 'identity' (IRNN) is for arch rnn only")
