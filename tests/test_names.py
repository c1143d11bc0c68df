"""MLflow run names a person can read: hand-spelt names, at most 40 characters for every cell of
the default study, and unique within a study whatever it varies (the settings other branches
add included), because two cells with different settings always get different names."""

from __future__ import annotations

import itertools

import pytest
from conftest import validated

from vanishing.config import expand_cells, make_cell
from vanishing.settings import INV_SQRT_DEPTH
from vanishing.tracking.names import cell_run_name, replica_run_name

PLAIN = dict(activation="sigmoid", depth=32, norm="none", residual=False)


def name(**values) -> str:
    cell = make_cell({**PLAIN, **values}, "c", [0], [0.1])
    return cell_run_name(cell.values())


def test_names_spelt_by_hand():
    assert name() == "sigmoid · d32"
    assert name(norm="batch", residual=True) == "sigmoid · d32 · batch · skip"
    assert name(residual=True, residual_scale=INV_SQRT_DEPTH) == "sigmoid · d32 · skip/√L"
    assert name(residual=True, residual_scale=0.5) == "sigmoid · d32 · skip×0.5"
    assert name(residual=True, residual_scale="1.0") == "sigmoid · d32 · skip"
    assert name(init="pytorch", optimizer="adam", epochs=0) == (
        "sigmoid · d32 · pytorch init · adam · 0 ep"
    )
    assert name(sigma_w2=2.0, sigma_b2=0.05) == "sigmoid · d32 · σw²=2.0 · σb²=0.05"
    assert name(residual=True, block="post") == "sigmoid · d32 · skip post"
    assert name(residual=True, block="pre") == "sigmoid · d32 · skip"  # pre: the default
    assert name(data="cmudict", seq_len=64, arch="rnn", depth=1) == "cmudict/T64 · rnn · sigmoid"
    values = make_cell(PLAIN, "c", [0], [0.1]).settings(0.03)
    assert replica_run_name(values, 0.03, 4) == "sigmoid · d32 · lr 0.03 · s4"


def test_a_setting_without_a_short_form_is_spelt_name_equals_value(monkeypatch):
    from vanishing.tracking import names

    monkeypatch.delitem(names.SHORT, "width")
    assert name(width=16) == "sigmoid · d32 · width=16"


def test_every_cell_of_the_default_study_has_a_short_unique_name(default_config):
    cells = expand_cells(default_config)
    got = [cell_run_name(c.values()) for c in cells]
    assert len(set(got)) == len(cells) > 100
    # at most 60 (a cell of the phase sub-grid names six settings: "tanh · d32 · lecun init ·
    # σw²=critical · σb²=0.05 · 10 ep"); the main sub-grid's at most 40
    assert max(map(len, got)) <= 60, max(got, key=len)
    main = [name for c, name in zip(cells, got, strict=True) if "main" in c.grids]
    assert max(map(len, main)) <= 40, max(main, key=len)


def test_names_stay_unique_when_new_settings_vary():
    """A study varying every axis at two values (arch, block and sigma_w2 among them) names each
    of its cells differently; the model need not build them to be named."""
    grid = {"activation": ["relu", "tanh"], "depth": [2, 8], "norm": ["none", "batch"],
            "residual": [False, True], "block": ["branch_act", "pre"], "sigma_w2": ["auto", 2.0],
            "sigma_b2": ["auto", 0.0], "residual_scale": [1.0, INV_SQRT_DEPTH],
            "init": ["auto", "pytorch"], "optimizer": ["sgd", "adam"], "width": [64, 16],
            "epochs": [0, 30]}  # fmt: skip
    config = validated({"study": "x", "grid": grid, "seeds": [0]})
    cells = expand_cells(config)
    got = {cell_run_name(c.values()) for c in cells}
    assert len(got) == len(cells) == len({tuple(sorted(c.values().items())) for c in cells})


@pytest.mark.parametrize(
    ("a", "b"), list(itertools.combinations([1.0, 0.5, INV_SQRT_DEPTH, 2.0], 2))
)
def test_two_branch_gains_are_two_names(a, b):
    assert name(residual=True, residual_scale=a) != name(residual=True, residual_scale=b)
