"""What MLflow shows for each run: the replica's few log10 metric keys (hand-computed values), a
cell's summary from selected.csv, FINDINGS' verdict table, and the profile image."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from vanishing.tracking import pages


def replica(depth: int, rms_by_step: dict[int, list[float]]):
    """One replica's runs, layer_gradients and curves rows."""
    layers = pd.DataFrame(
        [
            {"step": step, "layer": layer + 1, "grad_preact_rms": rms[layer],
             "grad_weight_norm": 2 * rms[layer], "saturation": 0.25 * layer,
             "weight_distance_rel": 0.0 if step == 0 else 0.01 * (layer + 1),
             "forward_q": 10.0 ** -layer, "forward_c": 0.5 + 0.1 * layer}
            for step, rms in rms_by_step.items()
            for layer in range(depth)
        ]
    )  # fmt: skip
    curves = pd.DataFrame({"epoch": [1, 2], "step": [16, 32], "train_loss": [2.0, 1.5],
                           "val_accuracy": [0.3, 0.5]})  # fmt: skip
    run = pd.Series({"final_train_loss": 1.4, "final_val_accuracy": 0.5, "best_val_accuracy": 0.5,
                     "final_test_accuracy": 0.48, "reset_test_accuracy": np.nan,
                     "grad_ratio_init": rms_by_step[0][0] / rms_by_step[0][-1],
                     "diverged": False})  # fmt: skip
    return run, layers, curves


def test_replica_metrics_are_few_log10_and_the_same_keys_at_any_depth():
    run, layers, curves = replica(3, {0: [1e-20, 1e-10, 1.0], 32: [1e-4, 1e-2, 0.5]})
    m = pages.replica_metrics(run, layers, curves)
    by = {(k, s): v for k, v, s in m}
    assert by[("log10_grad_ratio", 0)] == pytest.approx(-20)
    assert by[("log10_grad_ratio", 32)] == pytest.approx(math.log10(1e-4 / 0.5))
    assert by[("log10_grad_preact_rms/first_layer", 0)] == pytest.approx(-20)
    assert by[("log10_grad_preact_rms/last_layer", 32)] == pytest.approx(math.log10(0.5))
    assert by[("log10_grad_weight_norm/first_layer", 32)] == pytest.approx(math.log10(2e-4))
    assert by[("saturation/mean", 0)] == pytest.approx(0.25)  # mean of 0, 0.25, 0.5
    assert by[("log10_weight_distance_rel/last_layer", 32)] == pytest.approx(math.log10(0.03))
    # no movement at step 0 (log10 0) and the NaN reset accuracy are not logged
    assert ("log10_weight_distance_rel/first_layer", 0) not in by
    assert not any(k == "reset/test_accuracy" for k, _, _ in m)
    assert by[("log10_grad_ratio_init", 32)] == pytest.approx(-20)
    assert by[("test/accuracy", 32)] == 0.48 and by[("train/loss", 16)] == 2.0
    assert all(math.isfinite(v) for _, v, _ in m)
    deeper = pages.replica_metrics(*replica(32, {0: [1.0] * 32, 32: [1.0] * 32}))
    assert {k for k, _, _ in deeper} == {k for k, _, _ in m}  # depth does not add keys
    assert by[("log10_forward_q/last_layer", 0)] == pytest.approx(-2)
    assert by[("forward_c/first_layer", 32)] == pytest.approx(0.5)
    assert by[("forward_c/last_layer", 32)] == pytest.approx(0.7)
    assert len({k for k, _, _ in m}) == 21


def test_rows_per_replica_do_not_grow_with_depth():
    probes = {s: [1.0] * 32 for s in range(16)}
    rows = len(pages.replica_metrics(*replica(32, probes)))
    # 16 probes x 12 keys (less the two distances of step 0) + 2 epochs x 2 curves + 7 final
    # values (the NaN reset accuracy is not one); before, 3 quantities x 32 layers x 16 probes
    assert rows == 16 * 12 - 2 + 2 * 2 + 7


def test_cell_metrics_take_the_summary_columns_of_selected():
    row = pd.Series({"activation": "relu", "depth": 8, "cell": "c", "n_classes": 10,
                     "n_seeds": 3, "final_test_accuracy_n": 3, "final_test_accuracy_mean": 0.9,
                     "log10_grad_ratio_init_mean": -2.5, "divergence_rate": 0.0,
                     "divergence_rate_ci_high": np.nan, "selected": True, "selected_lr": 0.03,
                     "lr_at_edge": False})  # fmt: skip
    assert pages.cell_metrics(row) == {"n_seeds": 3.0, "final_test_accuracy_mean": 0.9,
                                       "log10_grad_ratio_init_mean": -2.5,
                                       "divergence_rate": 0.0, "selected_lr": 0.03,
                                       "lr_at_edge": 0.0}  # fmt: skip
    note = pages.cell_note("c", 15, pages.cell_metrics(row))
    assert "Selected lr **0.03**" in note and "15 replicas" in note


def test_verdict_table_is_cut_from_findings():
    md = "# Findings\n\ntext\n\n| claim | verdict |\n|---|---|\n| 1. A | supported |\n\n## 1. A\n"
    assert pages.verdict_table(md) == "| claim | verdict |\n|---|---|\n| 1. A | supported |"
    assert "| 1. A | supported |" in pages.study_note("s", pages.verdict_table(md))


def test_profile_images_of_a_cell_share_one_figure_and_its_axes(tmp_path):
    image = pages.ProfileImage(size=(5.6, 3.2), dpi=80)
    _, steep, _ = replica(6, {0: [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1], 32: [1e-3] * 6})
    flat = steep.assign(grad_preact_rms=1.0)
    paths = image.draw_cell([(steep, "a\nb", tmp_path / "a.png"), (flat, "c", tmp_path / "b.png")])
    lines = list(image.lines)
    assert list(lines[0].get_ydata()) == [0.0] * 6  # the last replica drawn: log10 1
    lo, hi = image.ax.get_ylim()
    assert lo < -6 and hi > 0  # one y range for the cell's replicas: both fit
    pixels = []
    for path in paths:
        with Image.open(path) as im:
            assert im.size == (448, 256)
            pixels.append(np.asarray(im.convert("RGB"), dtype=int))
    assert np.abs(pixels[0] - pixels[1]).sum() > 0  # the lines differ, the background not
    image.draw(steep, "again", tmp_path / "c.png")
    assert image.lines == lines  # same probe steps and depth: the lines are reused
    with Image.open(tmp_path / "c.png") as im:
        again = np.asarray(im.convert("RGB"), dtype=int)
    assert again.shape == pixels[0].shape
    image.draw(replica(3, {0: [1.0, 0.0, 1.0]})[1], "d", tmp_path / "d.png")  # underflow: a gap
    assert len(image.lines) == 1 and math.isnan(image.lines[0].get_ydata()[1])
