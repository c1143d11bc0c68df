"""Run names a person can read in MLflow's runs table: ``sigmoid · d32 · batch · skip``.

A cell's folder and its ``cell`` tag spell every axis (``activation~sigmoid_depth~32_...``), too
long for the runs table or a run's title. Its run *name* shows the activation and the depth,
and every other grid axis only where it differs from its default (``vanishing.settings``), each
in a form that names its setting: two cells with different settings get different names, so
names are unique within a study whatever its axes, and a setting added to the registry later is
shown as ``name=value`` until it is given a short form here. The full settings stay the runs'
params and tags. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable

from vanishing import settings as S

SEP = " · "


def _scale(symbol: str) -> Callable[[object], str]:
    return lambda v: f"{symbol}={'1/√L' if v == S.INV_SQRT_DEPTH else S.format_value(v)}"


# setting -> how a value other than the default is shown (the value alone where it can only
# be that setting's: the choices of arch, activation, norm and optimizer are disjoint)
SHORT: dict[str, Callable[[object], str]] = {
    "data": str,  # a sequence task with its length: see cell_run_name
    "arch": str,
    "activation": str,
    "depth": lambda v: f"d{v}",
    "norm": str,
    "residual": lambda v: "skip",  # with its gain: see cell_run_name
    "width": lambda v: f"w{v}",
    "init": lambda v: f"{v} init",
    "sigma_w2": _scale("σw²"),
    "sigma_b2": _scale("σb²"),
    "block": lambda v: f"{v} block",
    "optimizer": str,
    "adam_eps": lambda v: f"ε={v:g}",
    "momentum": lambda v: f"mom {v:g}",
    "weight_decay": lambda v: f"wd {v:g}",
    "batch_size": lambda v: f"bs{v}",
    "epochs": lambda v: f"{v} ep",
}
ALWAYS = ("activation", "depth")  # shown whatever their value (depth: not for recurrent nets)
RECURRENT = ("rnn", "gru", "lstm")
GAIN = {1.0: "", S.INV_SQRT_DEPTH: "/√L"}  # the residual branch's gain, spelt after "skip"
PLAIN = {"norm": "none", "residual": False}  # architecture axes (no default): omitted at these


def cell_run_name(values: dict) -> str:
    """A cell's run name from its settings (``Cell.values()``, by registry name)."""
    parts = []
    for s in S.SETTINGS:
        if s.replica or not s.axis or s.name not in values:  # the rest is one per study
            continue
        value = values[s.name]
        if s.name not in ALWAYS and _same(value, PLAIN.get(s.name, s.default)):
            continue
        if s.name == "residual_scale":  # one token with its skip: "skip/√L", "skip×0.5"
            continue
        if s.name == "seq_len":  # one token with its data set: "cmudict/T128"
            continue
        if s.name == "depth" and values.get("arch") in RECURRENT:  # one layer; depth is time
            continue
        if s.name == "data" and values.get("seq_len"):
            parts.append(f"{value}/T{values['seq_len']}")
            continue
        if s.name == "residual" and value:
            gain = values.get("residual_scale", 1.0)
            block = values.get("block", S.BY_NAME["block"].default)
            tail = "" if block == S.BY_NAME["block"].default else f" {block}"  # "skip post"
            parts.append("skip" + GAIN.get(gain, GAIN.get(_float(gain), f"×{gain}")) + tail)
            continue
        if s.name == "block":  # spelt with its skip
            continue
        short = SHORT.get(s.name)
        parts.append(short(value) if short else f"{s.name}={S.format_value(value)}")
    return SEP.join(parts)


def replica_run_name(values: dict, lr: float, seed: int) -> str:
    """A replica's run name: its cell's, its lr and its seed."""
    return f"{cell_run_name(values)}{SEP}lr {lr:g}{SEP}s{seed}"


def _float(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _same(value, default) -> bool:
    if isinstance(value, bool) or isinstance(default, bool):
        return value == default
    try:
        return float(value) == float(default)
    except (TypeError, ValueError):
        return value == default
