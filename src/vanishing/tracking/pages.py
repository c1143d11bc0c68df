"""What a run's page in MLflow shows: few, readable metric keys, the gradient profile as an image,
and the descriptions (``mlflow.note.content``) of the experiment and of each kind of run.

Torch-free. The full per-layer detail stays in the study's tables (``layer_gradients.csv``, also
attached to each replica run as its own rows); MLflow gets summaries that a metric chart can
show: gradients as log10 (they span twenty decades, and a linear axis shows 1e-20 as 0), at the
first and the last hidden layer only, so every run has the same keys whatever its depth.

A replica's keys, each a history over its probe steps (step 0 = before any update):

- ``log10_grad_ratio``: log10(grad_preact_rms at layer 1 / at layer depth); at step 0 it is
  log10 ``grad_ratio_init``. Below 0 the gradient shrinks on its way to the input;
- ``log10_grad_preact_rms/first_layer`` and ``/last_layer``, likewise ``log10_grad_weight_norm``
  and ``log10_weight_distance_rel`` (how far the layer's weights moved from their init);
- ``saturation/mean``: the saturated (or dead) fraction, averaged over the hidden layers;
- ``log10_forward_q/...`` (the pre-activations' second moment) and ``forward_c/...`` (the mean
  correlation between two probe examples' pre-activations) at the first and the last layer;

per epoch ``train/loss`` and ``val/accuracy``; and at the last step the run's final values
(``test/accuracy``, ``grad_ratio_init``, ``diverged``, ...). A value that is not finite (a
diverged replica, a gradient that underflowed to 0, no movement at step 0) is not logged.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

LOG10 = ("grad_preact_rms", "grad_weight_norm", "weight_distance_rel", "forward_q")  # log10
LINEAR = ("forward_c",)  # per probe, at the first and the last layer
ENDS = {"first_layer": 0, "last_layer": -1}  # layer 1 and layer depth
FINAL = {  # metric key -> runs.csv column, logged once at the last step
    "train/final_loss": "final_train_loss",
    "val/final_accuracy": "final_val_accuracy",
    "val/best_accuracy": "best_val_accuracy",
    "test/accuracy": "final_test_accuracy",
    "reset/test_accuracy": "reset_test_accuracy",
    "grad_ratio_init": "grad_ratio_init",
}
PROFILE_IMAGE = "gradient_profile.png"
LAYER_TABLE = "layer_gradients.csv"
# selected.csv columns that a cell run carries as metrics (the rest are settings or counts)
CELL_SUMMARY_SKIP = ("selected", "n_classes")


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else math.nan


def replica_metrics(run: pd.Series, layers: pd.DataFrame, curves: pd.DataFrame):
    """(key, value, step) triples of one replica: ``layers`` and ``curves`` are its rows of
    layer_gradients.csv and curves.csv, ``run`` its row of runs.csv."""
    out = []
    for step, g in layers.sort_values(["step", "layer"]).groupby("step", sort=True):
        step = int(step)
        rms = g["grad_preact_rms"].to_numpy()
        out.append(("log10_grad_ratio", _log10(rms[0] / rms[-1]) if rms[-1] > 0 else math.nan,
                    step))  # fmt: skip
        for q in LOG10:
            values = g[q].to_numpy()
            out += [(f"log10_{q}/{end}", _log10(values[i]), step) for end, i in ENDS.items()]
        out.append(("saturation/mean", float(np.nanmean(g["saturation"])), step))
        for q in LINEAR:
            values = g[q].to_numpy()
            out += [(f"{q}/{end}", float(values[i]), step) for end, i in ENDS.items()]
    out += [("train/loss", v, s) for v, s in zip(curves["train_loss"], curves["step"], strict=True)]
    out += [
        ("val/accuracy", v, s) for v, s in zip(curves["val_accuracy"], curves["step"], strict=True)
    ]
    last = int(curves["step"].max()) if len(curves) else int(layers["step"].max())
    out += [(key, float(run[col]), last) for key, col in FINAL.items()]
    out.append(("log10_grad_ratio_init", _log10(float(run["grad_ratio_init"])), last))
    out.append(("diverged", float(run["diverged"]), last))
    return [(k, float(v), int(s)) for k, v, s in out if math.isfinite(v)]


def cell_metrics(row: pd.Series) -> dict[str, float]:
    """A cell's summary at its selected lr (one row of selected.csv): every numeric column after
    the settings, under its table name (``final_test_accuracy_mean``, ``selected_lr``, ...)."""
    start = list(row.index).index("n_seeds")
    out = {}
    for key in row.index[start:]:
        value = row[key]
        if key in CELL_SUMMARY_SKIP or key.endswith("_n"):
            continue
        if isinstance(value, (bool, np.bool_)):
            value = float(value)
        if isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value):
            out[key] = float(value)
    return out


class ProfileImage:
    """Draws replicas' gradient profiles, log10 grad_preact_rms against the layer, one line per
    probe step coloured from step 0 (dark) to the last (light), into PNGs; the replicas of one
    cell share their axes, so their images compare at a glance.

    Cheap by design, since a study draws one per replica: one Agg figure is made once and reused,
    and for each cell its axes, ticks, labels and legend are drawn once and kept as a background,
    on which each replica's lines and title are drawn and the pixels written (blitting). Text is
    most of the cost of drawing a figure: about 55 ms a drawing here when the whole figure is
    drawn each time, 100 ms for a fresh figure with a constrained layout and a colour bar.
    No pyplot, no global state."""

    def __init__(self, size=(5.6, 3.2), dpi: int = 80):
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.dpi = dpi
        self.fig = Figure(figsize=size, dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_axes((0.12, 0.15, 0.66, 0.71))
        self.cmap = colormaps["viridis"]
        self.shape: tuple | None = None  # (probe steps, depth) the lines are made for
        self.lines: list = []

    def draw(self, layers: pd.DataFrame, title: str, path: Path) -> Path:
        """One replica's image; ``layers`` are its rows of layer_gradients.csv (step, layer,
        grad_preact_rms)."""
        return self.draw_cell([(layers, title, Path(path))])[0]

    def draw_cell(self, replicas: list[tuple[pd.DataFrame, str, Path]]) -> list[Path]:
        """The images of one cell's replicas, each (its layer_gradients rows, title, path); they
        must share their probe steps and depth (as a cell's replicas do)."""
        from PIL import Image

        profiles = [_log_profile(layers) for layers, _, _ in replicas]
        steps, x, _ = profiles[0]
        if (tuple(steps), len(x)) != self.shape:
            self._lines(steps, x)
            self.shape = (tuple(steps), len(x))
        finite = np.concatenate([y[np.isfinite(y)] for _, _, y in profiles])
        lo, hi = (finite.min(), finite.max()) if finite.size else (-1.0, 1.0)
        pad = max(0.05 * (hi - lo), 0.1)
        self.ax.set_ylim(lo - pad, hi + pad)
        self.ax.set_xlim(x[0] - 0.3, x[-1] + 0.3)
        blank = np.full(len(x), np.nan)
        for line in self.lines:
            line.set_ydata(blank)
        self.ax.set_title("", fontsize=8)
        self.canvas.draw()  # the background: axes, ticks, labels, legend
        background = self.canvas.copy_from_bbox(self.fig.bbox)
        out = []
        for (_, title, path), (_, _, y) in zip(replicas, profiles, strict=True):
            self.canvas.restore_region(background)
            for line, row in zip(self.lines, y, strict=True):
                line.set_ydata(row)
                self.ax.draw_artist(line)
            self.ax.title.set_text(title)
            self.ax.draw_artist(self.ax.title)
            rgba = np.asarray(self.canvas.buffer_rgba())
            Image.fromarray(rgba[..., :3]).save(path, format="png")
            out.append(Path(path))
        return out

    def _lines(self, steps: list[int], x: np.ndarray) -> None:
        ax = self.ax
        ax.cla()
        last = max(steps[-1], 1)
        self.lines = []
        for step in steps:
            end = step in (steps[0], steps[-1])
            (line,) = ax.plot(x, np.zeros(len(x)), color=self.cmap(step / last),
                              lw=2.0 if end else 0.9, marker="o" if end else None, ms=3,
                              label=("init, step 0" if step == 0 else f"step {step}")
                              if end else None)  # fmt: skip
            self.lines.append(line)
        ax.set_xlabel("hidden layer (1 = nearest the input)")
        ax.set_ylabel("log10 grad_preact_rms")
        ax.grid(alpha=0.3)
        # beside the axes: every place inside may hold some replica's lines
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  title="lighter = later", title_fontsize=7)  # fmt: skip


def _log_profile(layers: pd.DataFrame):
    """(probe steps, layers, log10 grad_preact_rms (steps, layers); NaN where it is 0)."""
    table = layers.pivot(index="step", columns="layer", values="grad_preact_rms")
    rms = table.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(rms > 0, np.log10(rms), np.nan)
    return list(table.index), table.columns.to_numpy(), y


def draw_seed_profiles(layers: pd.DataFrame, title: str, path: Path) -> Path:
    """A step-0 profile cell's image: log10 grad_preact_rms against the hidden layer at step 0,
    one line per seed (``layers``: the cell's rows of layer_gradients.csv)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.6, 3.2), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.12, 0.15, 0.66, 0.71))
    at_init = layers[layers["step"] == layers["step"].min()]
    for seed, g in at_init.groupby("seed", sort=True):
        _, x, y = _log_profile(g.groupby(["step", "layer"], as_index=False)["grad_preact_rms"]
                               .first())  # fmt: skip
        ax.plot(x, y[0], lw=1.0, marker="o", ms=2, label=f"seed {seed}")
    ax.set_xlabel("hidden layer (1 = nearest the input)")
    ax.set_ylabel("log10 grad_preact_rms")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.savefig(path, format="png")
    return Path(path)


def profile_cell_metrics(runs: pd.DataFrame) -> list[tuple[str, float, int]]:
    """(key, value, step 0) triples of a step-0 profile cell: log10 grad_ratio_init's mean,
    min and max over its seeds (``runs``: its rows of runs.csv)."""
    logs = np.log10(runs["grad_ratio_init"].to_numpy(dtype=float))
    logs = logs[np.isfinite(logs)]
    if not logs.size:
        return []
    return [(f"log10_grad_ratio_init/{k}", float(f(logs)), 0)
            for k, f in (("mean", np.mean), ("min", np.min), ("max", np.max))]  # fmt: skip


def experiment_note(study: str) -> str:
    """The experiment's description: what the study is and how its runs are organised."""
    return f"""# {study}: a study of vanishing gradients in deep MLPs

A Snakemake workflow trains a grid of MLPs (activation x depth x norm x residual x learning
rate x seed) with PyTorch Lightning and measures the gradient at every hidden layer, at
initialisation and during training.

**How the runs are organised** (expand a row of the runs table to see what it holds):

- the **study run** `{study}` (tag `vanishing.role = study`): the findings as its description,
  the study's tables, figures, `FINDINGS.md` and (after `make report`) the Snakemake report as
  artifacts;
- one **cell run** per grid cell (`vanishing.role = cell`), named by its settings: the cell's
  summary at its selected learning rate as metrics (`selected_lr`, `final_test_accuracy_mean`,
  `log10_grad_ratio_init_mean`, `divergence_rate`, ...);
- under each cell, one **replica run** per (learning rate, seed) (`vanishing.role = replica`):
  training curves, log10 gradient summaries per probe step, the gradient profile across layers
  as `{PROFILE_IMAGE}` and its per-layer numbers as `{LAYER_TABLE}`.

Every run is tagged with its settings (filter with e.g. `tags.activation = 'sigmoid'`).

**Findings**: the study run's description; `results/FINDINGS.md` and the report
(`make report`: `results/report.html`) in the study's working directory.
"""


def study_note(study: str, findings: str | None = None) -> str:
    """The study run's description: FINDINGS' verdict table once published."""
    if findings is None:
        return f"Study `{study}` is running: its findings appear here when it is published."
    return (
        f"# Findings of `{study}`\n\n{findings}\n\nEach claim's rule and evidence: the artifact "
        "`study/FINDINGS.md`; every figure and table: `study/report.html` (after `make report`) "
        "and the artifacts under `study/`."
    )


def verdict_table(findings_md: str) -> str:
    """The verdict table of FINDINGS.md: the lines from the header ``| claim ...`` to the first
    blank line after it."""
    lines = findings_md.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| claim "))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return "\n".join(lines[start:end])


def cell_note(cell: str, n_replicas: int, summary: dict | None = None,
              profile: bool = False) -> str:  # fmt: skip
    """A cell run's description; with ``summary`` (its ``cell_metrics``) the result at its
    selected learning rate. A step-0 ``profile`` cell has no replica runs: this run holds them."""
    if profile:
        text = (
            f"Cell `{cell}`, a gradient profile at initialisation (0 epochs) of {n_replicas} "
            f"replicas (seeds), all in this run: `{PROFILE_IMAGE}` (one line per seed) and "
            f"`{LAYER_TABLE}` (every probed quantity per seed and layer). "
        )
    else:
        text = (
            f"Cell `{cell}`: {n_replicas} replicas (every learning rate x seed) are nested under "
            "this run. "
        )
    if summary is None:
        return (
            text
            + "Its summary at the selected learning rate is logged when the study is published."
        )

    def fmt(key: str, digits: int = 3) -> str:
        v = summary.get(key)
        return "n/a" if v is None else f"{v:.{digits}g}"

    return text + (
        f"\n\nSelected lr **{fmt('selected_lr')}** (best mean validation accuracy over seeds): "
        f"test accuracy {fmt('final_test_accuracy_mean')} [95% CI "
        f"{fmt('final_test_accuracy_ci_low')}, {fmt('final_test_accuracy_ci_high')}], "
        f"log10_grad_ratio_init {fmt('log10_grad_ratio_init_mean')}, divergence rate "
        f"{fmt('divergence_rate')}."
    )


def replica_note(cell: str, lr: float, seed: int) -> str:
    return (
        f"Replica lr {lr:g}, seed {seed} of cell `{cell}` (its parent run). Artifacts: "
        f"`{PROFILE_IMAGE}`, log10 grad_preact_rms across the hidden layers at every probe "
        f"step; `{LAYER_TABLE}`, every probed quantity per layer and step. Metrics: "
        "`log10_*` gradient summaries at the first and last hidden layer per probe step, "
        "`train/loss` and `val/accuracy` per epoch, final values at the last step."
    )
