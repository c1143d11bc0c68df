"""The vocabularies (settings, activations, figures) are defined once and everything follows them:
the schema agrees with the registries, a made-up setting added to the registry alone reaches the
CLI, cell names, runs.csv and the grouping keys, and the package's imports flow one way."""

from __future__ import annotations

import ast
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, SCHEMA, snakemake_env, validated

from vanishing import activations, inits, settings
from vanishing.config import SECTIONS, expand_cells
from vanishing.report import catalog, figures
from vanishing.training.models import activation_fns

PACKAGE = REPO / "src" / "vanishing"
MINIMAL = {"grid": {"activation": ["relu"], "depth": [2], "norm": ["none"], "residual": [False]}}


def schema_defs() -> tuple[dict, dict]:
    schema = yaml.safe_load(SCHEMA.read_text())
    return schema["properties"], schema["$defs"]


def test_schema_defaults_and_sections_agree_with_the_registry():
    props, _ = schema_defs()
    cfg = validated(MINIMAL)
    for s in settings.SETTINGS:
        if s.arch:
            assert s.key not in props[s.part]["properties"], s.name
            continue
        default = list(s.default) if isinstance(s.default, tuple) else s.default
        assert cfg[s.part][s.key] == default, s.name
    for part in settings.PARTS:
        assert set(props[part]["properties"]) == {s.key for s in settings.part(part) if not s.arch}


def test_schema_enums_are_the_registry_choices():
    props, defs = schema_defs()
    for s in settings.SETTINGS:
        if s.choices is None:
            continue
        enum = (
            defs[s.name]["enum"] if s.name in defs else props[s.part]["properties"][s.key]["enum"]
        )
        assert tuple(enum) == tuple(s.choices), s.name
    assert tuple(defs["activation"]["enum"]) == activations.NAMES
    assert tuple(defs["init"]["enum"]) == inits.INITS


def test_schema_grid_axes_and_pack_are_the_registry_axes():
    props, defs = schema_defs()
    grid = defs["grid"]
    assert set(grid["properties"]) - {"seeds"} == set(settings.AXES)
    assert tuple(grid["required"]) == settings.ARCH_AXES
    assert tuple(props["pack"]["items"]["enum"]) == settings.PACKABLE


def test_dataclasses_hold_the_registry_settings_with_its_defaults():
    for part, cls in SECTIONS.items():
        fields = cls.__dataclass_fields__
        expected = [s for s in settings.part(part) if not s.replica]
        assert set(fields) == {s.key for s in expected}
        for s in expected:
            if not s.arch:
                assert fields[s.key].default == s.default, s.name


@pytest.mark.parametrize("name", activations.NAMES)
def test_activation_entries_agree_with_torch(name):
    """phi and phi' of the registry (numpy, for the theory) are what the model applies (torch);
    max_slope is phi's largest slope; the in-place form computes the same."""
    spec = activations.get(name)
    phi, phi_ = activation_fns(name)
    x = torch.linspace(-8, 8, 4001, dtype=torch.float64, requires_grad=True)
    y = phi(x)
    (dy,) = torch.autograd.grad(y.sum(), x)
    xs = x.detach().numpy()
    np.testing.assert_allclose(spec.phi(xs), y.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(spec.dphi(xs), dy.numpy(), atol=1e-7)
    assert spec.max_slope == pytest.approx(dy.max().item(), rel=1e-4)
    assert torch.equal(phi_(x.detach().clone()), y.detach())
    assert spec.init in inits.INITS and inits.resolve_init("auto", name) == spec.init
    assert 0 <= spec.color < 10


def test_saturation_rule_follows_the_registry():
    assert activations.SATURATING == ("sigmoid", "tanh")
    assert activations.RECTIFYING == ("relu", "gelu")
    assert activations.get("tanh").unit_state == "saturated"
    with pytest.raises(ValueError, match="activation must be one of"):
        activations.get("softsign")


def test_every_figure_has_a_plot_function_and_a_caption():
    for spec in catalog.FIGURES:
        fn = inspect.unwrap(figures.plot_function(spec.name))
        assert len(inspect.signature(fn).parameters) == len(spec.tables), spec.name
        assert (REPO / "workflow" / "report" / f"{spec.name}.rst").exists(), spec.name
    assert len(set(catalog.NAMES)) == len(catalog.NAMES)
    text = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    assert not any(f'"{name}"' in text for name in catalog.NAMES)  # no figure name typed there


MADE_UP = '    Setting("made_up", "model", int, 3, init=True),\n'


@pytest.fixture(scope="module")
def package_with_made_up_setting(tmp_path_factory):
    """A copy of the package whose registry has one more setting, and nothing else changed."""
    root = tmp_path_factory.mktemp("madeup")
    shutil.copytree(PACKAGE, root / "vanishing", ignore=shutil.ignore_patterns("__pycache__"))
    path = root / "vanishing" / "settings.py"
    text = path.read_text()
    anchor = '    Setting("optimizer",'
    assert anchor in text
    path.write_text(text.replace(anchor, MADE_UP + anchor, 1))
    return root


def run_in(root: Path, *args: str) -> str:
    """Run the interpreter with ``args`` on the package copy in ``root``; its stdout."""
    env = {**snakemake_env(), "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=root, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


PROBE = """
import vanishing
from vanishing.analysis import comparisons, stats, theory
from vanishing.config import ModelConfig, expand_cells
from vanishing.report import plotting

grid = dict(activation=["relu"], depth=[2], norm=["none"], residual=[False], made_up=[1, 2])
cfg = dict(grid=grid, seeds=[0], pack=[], data=dict(name="digits"), model={},
           train=dict(lr=[0.1], probe_size=8))
print(vanishing.__file__)
print([c.name for c in expand_cells(cfg)])
print("made_up" in stats.INIT_KEYS, "made_up" in comparisons.COLUMNS, "made_up" in theory.GROUP,
      "made_up" in plotting.OTHER_KEYS, ModelConfig("relu", 2, "none", False).made_up)
"""


def test_a_made_up_setting_reaches_cli_names_tables_and_grouping_keys(
    package_with_made_up_setting, tmp_path
):
    root = package_with_made_up_setting
    assert "--made-up MADE_UP" in run_in(root, "-m", "vanishing", "train", "--help")
    where, names, keys = run_in(root, "-c", PROBE).splitlines()
    assert where.startswith(str(root))
    base = "activation~relu_depth~2_norm~none_residual~false_made_up~"
    assert names == str([base + "1", base + "2"])
    assert keys == "True True True True 3"
    # a real (tiny) training job from the CLI's flags: runs.csv carries the new column
    tracking = str(tmp_path / "tracking.json")
    run_in(root, "-m", "vanishing", "init-tracking", "--study", "madeup", "--out", tracking,
           "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db")  # fmt: skip
    run_in(root, "-m", "vanishing", "train", "--activation", "relu", "--depth", "1", "--norm",
           "none", "--residual", "false", "--made-up", "5", "7", "--epochs", "1", "--lr", "0.1",
           "--probe-size", "16", "--tracking", tracking, "--out-root", str(tmp_path / "runs"),
           "--manifest", str(tmp_path / "job.json"))  # fmt: skip
    runs = pd.concat(pd.read_csv(p) for p in sorted((tmp_path / "runs").glob("*/runs.csv")))
    assert list(runs["made_up"]) == [5, 7]
    columns = list(settings.COLUMNS)
    at = columns.index("optimizer")  # the made-up setting is registered just before it
    assert list(runs.columns[: len(columns) + 1]) == [*columns[:at], "made_up", *columns[at:]]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_imports_flow_along_the_pipeline():
    """Training never imports analysis or report; analysis and report import no torch (also
    not indirectly), nor does the vocabulary the Snakefile loads."""
    for path in (PACKAGE / "training").glob("*.py"):
        bad = {
            m for m in imports_of(path) if m.startswith(("vanishing.analysis", "vanishing.report"))
        }
        assert not bad, f"{path.name} imports {bad}"
    modules = [f"vanishing.{sub}.{p.stem}" for sub in ("analysis", "report")
               for p in (PACKAGE / sub).glob("*.py") if p.stem != "__init__"]  # fmt: skip
    modules += ["vanishing.settings", "vanishing.activations", "vanishing.config",
                "vanishing.outputs", "vanishing.report.catalog", "vanishing.progress"]  # fmt: skip
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = [m for m in ('torch', 'pytorch_lightning', 'mlflow') if m in sys.modules]\n"
        "sys.exit(str(bad) if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_package_reads_like_the_pipeline():
    subpackages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists())
    assert subpackages == ["analysis", "report", "tracking", "training"]


def test_cells_name_every_listed_axis_in_registry_order():
    cfg = validated({"grid": {"residual": [True], "depth": [4], "activation": ["tanh"],
                              "norm": ["layer"], "width": [8, 16]}})  # fmt: skip
    assert [c.name for c in expand_cells(cfg)] == [
        "activation~tanh_depth~4_norm~layer_residual~true_width~8",
        "activation~tanh_depth~4_norm~layer_residual~true_width~16",
    ]


def test_the_dataclasses_carry_each_settings_type():
    """Readers (``help``, ``dataclasses.fields``) see real types, taken from each setting's
    parser in the registry, not ``Any``."""
    import dataclasses

    from vanishing.config import ModelConfig, TrainConfig

    types = {f.name: f.type for c in (ModelConfig, TrainConfig) for f in dataclasses.fields(c)}
    assert (types["depth"], types["residual"], types["momentum"]) == (int, bool, float)
    assert types["residual_scale"] == float | str and types["optimizer"] is str
