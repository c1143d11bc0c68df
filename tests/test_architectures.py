"""The registry of architectures: every list of them follows it, each entry's model class and
theory resolve, and a cell it cannot build is refused, naming why, before any work."""

from __future__ import annotations

import importlib

import pytest
import yaml
from conftest import SCHEMA, validated

from vanishing import architectures, settings
from vanishing.config import expand_cells


def grid(**axes) -> dict:
    base = {"activation": ["relu"], "depth": [2], "norm": ["none"], "residual": [False]}
    return {"grid": {**base, **axes}}


def test_settings_and_schema_list_the_registry_archs():
    assert settings.ARCHS == architectures.NAMES
    assert settings.BY_NAME["arch"].choices == architectures.NAMES
    schema = yaml.safe_load(SCHEMA.read_text())
    assert tuple(schema["$defs"]["arch"]["enum"]) == architectures.NAMES
    assert architectures.NAMES[0] == "mlp"


def test_every_data_set_says_which_inputs_it_gives():
    assert set(architectures.DATA_KINDS) == set(settings.DATASETS)
    for kinds in architectures.DATA_KINDS.values():
        assert set(kinds) <= set(architectures.INPUT_KINDS)


@pytest.mark.parametrize("arch", architectures.ARCHITECTURES, ids=lambda a: a.name)
def test_entries_resolve(arch):
    cls = arch.model_class()
    for method in ("forward", "layers", "layer_keys", "reestimate_batch_stats", "sq_norms"):
        assert callable(getattr(cls, method)), method
    if arch.theory is not None:
        module, _, name = arch.theory.rpartition(".")
        assert callable(getattr(importlib.import_module(module), name))
    else:
        assert arch.outside_theory


def test_the_training_module_builds_the_registry_class():
    from vanishing.training.data import load_splits
    from vanishing.training.module import CellModule

    (cell,) = expand_cells(validated(grid()))
    splits = load_splits(cell.data, 8)
    module = CellModule(cell, splits, [0], [0.1])
    assert type(module.net) is architectures.get("mlp").model_class()


@pytest.mark.parametrize(
    "axes, data, needle",
    [
        ({"depth": [2, 0]}, "digits", "mlp needs at least 1 hidden layer, got depth 0"),
        ({"arch": ["cnn"], "depth": [8, 10]}, "digits", "6n \\+ 2 with n >= 1.*got depth 10"),
        ({"arch": ["cnn"], "depth": [2]}, "digits", "got depth 2"),
        ({"arch": ["cnn"], "depth": [8]}, "mnist1d", "cnn takes images, and data 'mnist1d'"),
        ({"init": ["delta_orthogonal"]}, "digits", "delta_orthogonal is defined for conv"),
    ],
)
def test_a_cell_the_architecture_cannot_build_is_refused_by_name(axes, data, needle):
    config = validated({**grid(), "data": {"name": data}})
    config["grid"].update(axes)  # past the schema, whose bounds are looser than some depth rules
    with pytest.raises(ValueError, match=needle):
        expand_cells(config)


def test_unknown_arch_and_data_are_named():
    with pytest.raises(ValueError, match="arch must be one of"):
        architectures.check("transformer", 2, "digits")
    with pytest.raises(ValueError, match="not a known data set"):
        architectures.check("mlp", 2, "cifar")
    architectures.check("mlp", 1, "mnist1d")  # valid: no error
    architectures.check("cnn", 110, "mnist", "delta_orthogonal")
