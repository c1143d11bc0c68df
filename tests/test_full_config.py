"""config/full.yaml, the GPU/cluster study: it scales every sub-grid of the default study, its
conv nets reach He et al.'s depth 110 and more on 28x28 MNIST, and the real Snakefile plans it
(a dry run)."""

from __future__ import annotations

import re
import subprocess
import sys

import yaml
from conftest import REPO, snakemake_env, validated

from vanishing.config import apply_design, expand_cells, expand_jobs

FULL = REPO / "config" / "full.yaml"


def full_config() -> dict:
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    user = yaml.safe_load(FULL.read_text())
    return validated(apply_design({**default, **user}, user))


def test_full_study_scales_every_default_sub_grid():
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["grids"]
    cfg = full_config()
    assert set(default) <= set(cfg["grids"]), "every default sub-grid has its full version"
    cells = expand_cells(cfg)
    for name in default:
        small = [c for c in expand_cells(validated(yaml.safe_load(
            (REPO / "config" / "config.yaml").read_text()))) if name in c.grids]  # fmt: skip
        big = [c for c in cells if name in c.grids]
        assert len(big) >= len(small), name
        assert max(len(c.replicas()) for c in big) >= max(len(c.replicas()) for c in small), name
    conv = [c for c in cells if c.model.arch == "cnn"]
    assert max(c.model.depth for c in conv) >= 110 and {c.data.name for c in conv} == {"mnist"}
    assert 16 <= min(c.model.width for c in conv) <= max(c.model.width for c in conv) <= 64


def test_full_study_dry_run(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
         "--configfile", str(FULL), "-n", "--workflow-profile", "none"],
        capture_output=True, text=True, env=snakemake_env(), timeout=300,
    )  # fmt: skip
    said = out.stdout + out.stderr
    assert out.returncode == 0, said[-2000:]
    train = re.search(r"^train\s+(\d+)$", said, re.MULTILINE)
    # the Snakefile plans one train job per job of the expansion, no more and no fewer
    assert train and int(train.group(1)) == len(expand_jobs(full_config()))
    assert not (tmp_path / "results").exists()
