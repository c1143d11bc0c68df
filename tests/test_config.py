"""The config schema: its defaults agree with the dataclasses; bad input fails with a message
naming the key before any job starts; the grid expands into the expected jobs and cells."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, snakemake_env, validated

from vanishing.config import (
    ModelConfig,
    apply_design,
    branch_gain,
    check_config,
    expand_cells,
    expand_jobs,
    study_lrs,
)
from vanishing.settings import DEFAULT_LRS, INV_SQRT_DEPTH, parse_residual_scale

MINIMAL = {"grid": {"activation": ["relu"], "depth": [2], "norm": ["none"], "residual": [False]}}


@pytest.mark.parametrize(
    "patch,needle",
    [
        (
            {"grid": {**MINIMAL["grid"], "activation": ["sigmod"]}},
            "'sigmod' is not one of ['sigmoid', 'tanh', 'relu', 'gelu']",
        ),
        ({"grid": {**MINIMAL["grid"], "depth": [0]}}, "0 is less than the minimum of 1"),
        (
            {"grid": {**MINIMAL["grid"], "norm": ["group"]}},
            "'group' is not one of ['none', 'batch', 'layer']",
        ),
        ({"trian": {"epochs": 3}}, "'trian' was unexpected"),
        ({"grid": {**MINIMAL["grid"], "widht": [8]}}, "'widht' was unexpected"),
        ({"train": {"lr": [0.1, -1]}}, "-1"),
        ({"mlflow": {"tracking_uri": "file:./mlruns"}}, "does not match"),
        ({"model": {"residual_scale": 0}}, "residual_scale"),
        ({"grid": {**MINIMAL["grid"], "residual_scale": ["sqrt"]}}, "'sqrt'"),
    ],
)
def test_bad_values_are_named(patch, needle):
    with pytest.raises(Exception) as err:
        validated({**MINIMAL, **patch})
    assert needle in str(err.value)


def test_pack_names_settings_and_ignores_those_the_study_does_not_vary():
    grid = {**MINIMAL["grid"], "depth": [2, 4]}
    cfg = validated({**MINIMAL, "grid": grid, "pack": ["width"]})
    base = "activation~relu_depth~{}_norm~none_residual~false"
    assert list(expand_jobs(cfg)) == [base.format(2), base.format(4)]
    with pytest.raises(Exception, match="'widht' is not one of"):
        validated({**MINIMAL, "pack": ["widht"]})


def test_bad_config_stops_the_workflow_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**MINIMAL, "grid": {**MINIMAL["grid"], "depth": [0]}}))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "Snakefile"),
            "-d",
            str(tmp_path),
            "--configfile",
            str(bad),
            "-n",
            "--workflow-profile",
            "none",
        ],
        capture_output=True,
        text=True,
        env=snakemake_env(),
        timeout=120,
    )
    said = out.stdout + out.stderr
    assert out.returncode != 0
    assert "0 is less than the minimum of 1" in said
    assert "['grid']['depth'][0]" in said
    assert not (tmp_path / "results").exists()


def test_default_study_expands_into_balanced_jobs(default_config):
    """One MLP job per (activation, residual) across the MLP sub-grids, two conv jobs and one
    job per recurrent (arch, activation); cells shared by no two sub-grids; a branch gain and a
    block only where there is a branch (pre in the MLPs' main, deep and profile grids; post and
    branch_act, step 0 only, in blocks; post in the conv nets)."""
    jobs = expand_jobs(default_config)
    assert len(jobs) == 4 * 2 + 2 + (3 + 2)
    cells = [c for cs in jobs.values() for c in cs]
    assert len({c.name for c in cells}) == len(cells)
    by_grid = {g: [c for c in cells if g in c.grids] for g in default_config["grids"]}
    assert len(by_grid["main"]) == 3 * 5 * 2 * 2 and len(by_grid["profile"]) == 4 * 8 * 3 * 2
    assert len(by_grid["deep"]) == 2 * 2 * 2 * 2 and len(by_grid["matched_init"]) == 4 * 2 * 2
    assert len(by_grid["conv"]) == 3 * 2 * 2
    assert {(c.model.arch, c.model.width) for c in by_grid["conv"]} == {("cnn", 8)}
    assert {c.train.epochs for c in by_grid["profile"]} == {0}
    assert {c.seeds for c in by_grid["profile"]} == {tuple(range(10))}
    assert {c.lrs for c in by_grid["adam"]} == {(0.0003, 0.001, 0.003)}
    assert {c.model.residual_scale for c in cells if not c.model.residual} == {1.0}
    assert {c.model.residual_scale for c in cells if c.model.residual} == {INV_SQRT_DEPTH}
    assert len(by_grid["blocks"]) == 3 * 2 * 2 * 2
    assert {c.model.block for c in by_grid["blocks"]} == {"post", "branch_act"}
    assert {c.train.epochs for c in by_grid["blocks"]} == {0}
    mlp_skips = [c for c in cells if c.model.residual and c.model.arch == "mlp"]
    assert {c.model.block for c in mlp_skips if "blocks" not in c.grids} == {"pre"}
    assert {c.model.block for c in by_grid["conv"] if c.model.residual} == {"post"}
    # the recurrent nets' sub-grids, in jobs of their own
    # two tasks (cmudict and the adding control) x T x activations (x sigma_w2) or archs
    assert len(by_grid["recurrent_profile"]) == 2 * 4 * 3 * 3
    assert len(by_grid["recurrent"]) == 2 * 2 * 3
    assert {c.model.arch for c in by_grid["main"]} == {"mlp"}
    assert {c.data.seq_len for c in by_grid["main"]} == {0}
    # issue 16's sub-grids: adam_eps only splits adam cells; named sigma_w2 points resolve
    assert len(by_grid["criticality"]) == 3 * 3 * 2 * 4 and len(by_grid["optimizers"]) == 4
    assert {c.train.epochs for c in by_grid["criticality"]} == {0}
    solved = {round(c.model.sigma_w2_resolved, 3) for c in by_grid["phase"]}
    assert solved == {0.5, 1.0, 1.761, 4.0}  # critical at sigma_b2 = 0.05: 1.761
    first = jobs["arch~mlp_activation~sigmoid_residual~false_width~64_residual_scale~1.0"][0]
    assert first.name == ("data~digits_seq_len~0_arch~mlp_activation~sigmoid_depth~2_norm~none_"
                          "residual~false_width~64_init~auto_sigma_w2~auto_sigma_b2~auto_"
                          "block~pre_residual_scale~1.0_optimizer~sgd_adam_eps~1e-08_"
                          "epochs~30")  # fmt: skip
    assert first.lrs == (0.01, 0.03, 0.1, 0.3) and first.seeds == (0, 1, 2, 3, 4)


def test_unpacked_grid_gives_one_job_per_cell_and_extra_axes():
    grid = {**MINIMAL["grid"], "depth": [2, 8], "width": [32, 64]}
    jobs = expand_jobs(validated({**MINIMAL, "grid": grid, "pack": []}))
    assert len(jobs) == 2 * 2 and all(len(c) == 1 for c in jobs.values())
    name = "activation~relu_depth~8_norm~none_residual~false_width~32"
    assert jobs[name][0].model.width == 32


def test_lr_from_a_grid_overrides_train_lr():
    cfg = validated(MINIMAL)
    assert study_lrs(cfg) == list(DEFAULT_LRS)
    cfg = validated({**MINIMAL, "grid": {**MINIMAL["grid"], "lr": [0.5]}})
    assert study_lrs(cfg) == [0.5]
    assert all("lr" not in c.name for cs in expand_jobs(cfg).values() for c in cs)


def test_a_user_grid_replaces_the_default_sub_grids(default_config):
    """As the Snakefile merges a --configfile: the user's grid is the whole design."""
    user = {"grid": {"activation": ["tanh"], "depth": [4], "norm": ["none"], "residual": [False]}}
    merged = {**default_config, **user}  # snakemake's merge keeps both keys
    cfg = apply_design(merged, user)
    assert "grids" not in cfg and [c.name for c in expand_cells(cfg)] == [
        "activation~tanh_depth~4_norm~none_residual~false"
    ]
    assert cfg["train"]["epochs"] == default_config["train"]["epochs"]  # the rest merges


def test_readme_example_config_is_valid_and_expands_as_described():
    """The `my.yaml` of the README passes the schema and the checks, and gives the grid it says:
    tanh x 3 depths x 2 norms x 2 residual x 2 widths, one job per (residual, width)."""
    readme = (REPO / "README.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    cfg = validated(yaml.safe_load(block))
    check_config(cfg)
    jobs = expand_jobs(cfg)
    assert len(jobs) == 2 * 2
    cells = [c for cs in jobs.values() for c in cs]
    assert len(cells) == 3 * 2 * 2 * 2
    assert {c.data.name for c in cells} == {"mnist1d"}
    assert {c.model.activation for c in cells} == {"tanh"}
    assert {c.model.init for c in cells} == {"orthogonal"}
    assert {c.model.width for c in cells} == {64, 256}
    assert study_lrs(cfg) == [0.01, 0.03, 0.1] and cfg["seeds"] == [0, 1, 2, 3, 4]


def test_residual_scale_number_or_one_over_sqrt_depth():
    grid = {**MINIMAL["grid"], "residual": [False, True], "residual_scale": [0.5, INV_SQRT_DEPTH]}
    cfg = validated({**MINIMAL, "grid": grid})
    assert cfg["model"]["residual_scale"] == 1.0  # the default, unused under a grid axis
    cells = [c for cs in expand_jobs(cfg).values() for c in cs]
    # without a residual connection the gain does not apply: the two plain cells are one
    assert [c.name for c in cells] == [
        "activation~relu_depth~2_norm~none_residual~false_residual_scale~1.0",
        "activation~relu_depth~2_norm~none_residual~true_residual_scale~0.5",
        "activation~relu_depth~2_norm~none_residual~true_residual_scale~inv_sqrt_depth",
    ]
    assert ModelConfig("relu", 16, "none", True, residual_scale=INV_SQRT_DEPTH).branch_gain == 0.25
    assert ModelConfig("relu", 16, "none", True, residual_scale=0.5).branch_gain == 0.5
    assert branch_gain("0.2", 4) == 0.2  # as a table with mixed values holds it
    assert parse_residual_scale(INV_SQRT_DEPTH) == INV_SQRT_DEPTH
    assert parse_residual_scale("0.25") == 0.25


@pytest.mark.parametrize("name", ["config.yaml", "residual_scale.yaml"])
def test_shipped_configs_are_valid(name):
    """Every study config in config/ passes the schema and the checks (merged over the default,
    as `snakemake --configfile` merges it)."""
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    user = yaml.safe_load((REPO / "config" / name).read_text())
    cfg = validated(apply_design({**default, **user}, user))
    assert len(expand_jobs(cfg)) >= 1


SUBGRIDS = {
    "grids": {
        "main": {**MINIMAL["grid"], "depth": [2, 8]},
        "deep": {**MINIMAL["grid"], "depth": [8, 64], "epochs": [5], "seeds": [0, 1, 2, 3, 4]},
        "again": {**MINIMAL["grid"], "depth": [2]},
    }
}


def test_subgrids_expand_into_named_cells_once_each():
    """Cells are named over every setting any sub-grid lists (here depth and epochs), each is
    trained once, and one that two sub-grids share belongs to both."""
    cells = {c.name: c for c in expand_cells(validated(SUBGRIDS))}
    base = "activation~relu_depth~{}_norm~none_residual~false_epochs~{}"
    assert set(cells) == {base.format(2, 30), base.format(8, 30), base.format(8, 5),
                          base.format(64, 5)}  # fmt: skip
    assert cells[base.format(2, 30)].grids == ("main", "again")
    assert cells[base.format(64, 5)].grids == ("deep",)
    assert cells[base.format(64, 5)].seeds == (0, 1, 2, 3, 4)
    assert (
        cells[base.format(8, 30)].seeds == (0, 1, 2)
        and cells[base.format(8, 30)].train.epochs == 30
    )


def test_subgrids_sharing_a_cell_with_other_seeds_are_refused():
    cfg = validated(SUBGRIDS)
    cfg["grids"]["again"]["seeds"] = [7]
    with pytest.raises(ValueError, match="is in sub-grids .* with different seeds or lrs"):
        expand_cells(cfg)


def test_grid_and_grids_together_are_refused():
    with pytest.raises(Exception, match="grid"):
        expand_cells(validated({**MINIMAL, **SUBGRIDS}))
