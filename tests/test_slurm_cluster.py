"""Real single-node SLURM cluster tests (slurm-wlm 22.05 from Debian).

The session fixture ``slurm_cluster`` starts a private cluster with
``scripts/slurm-cluster.sh start DIR`` (its own munged, slurmctld and slurmd, partitions ``cpu``
(default) and ``gpu`` with two fake GPUs) and stops exactly the PIDs it recorded at teardown, also
when tests fail. It skips when SLURM is not installed (``scripts/slurm-cluster.sh install``).

Reuse for other tests: request the fixture ``slurm_cluster`` (a :class:`SlurmCluster` with ``dir``
and ``env``) and run ``snakemake --profile profiles/slurm`` with ``env=slurm_cluster.env``.
To share it with other test modules, import it in ``tests/conftest.py``
(``from test_slurm_cluster import slurm_cluster  # noqa: F401``) rather than in each module, so
that one cluster serves the whole session.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm-cluster.sh"
PROFILE = REPO / "profiles" / "slurm"

pytestmark = pytest.mark.slurm


def slurm_env(cluster_dir: str | os.PathLike) -> dict[str, str]:
    """Variables that point SLURM clients at the cluster in ``cluster_dir``.

    Parses ``scripts/slurm-cluster.sh env DIR`` (``export K=V`` lines): SLURM_CONF, PATH (with the
    cluster's client wrappers in DIR/bin first) and VANISHING_SLURM_CLUSTER_DIR. Merge it into a
    full environment: ``{**os.environ, **slurm_env(d)}``.
    """
    out = subprocess.run(
        [str(SCRIPT), "env", str(cluster_dir)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    env: dict[str, str] = {}
    for line in out.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, value = words[1].split("=", 1)
            env[key] = value
    return env


@dataclass(frozen=True)
class SlurmCluster:
    dir: Path
    env: dict[str, str]  # full environment for subprocesses (os.environ + slurm_env(dir))

    def run(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """Run a SLURM client command (sinfo, squeue, ...) against this cluster."""
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("timeout", 30)
        return subprocess.run(list(args), env=self.env, check=True, **kwargs)


def _slurm_installed() -> bool:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return all(shutil.which(b, path=path) for b in ("slurmctld", "slurmd", "munged", "sbatch"))


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    if not _slurm_installed():
        pytest.skip(
            "SLURM is not installed (no slurmctld/slurmd/munged/sbatch); "
            "run `scripts/slurm-cluster.sh install` (root, apt) first"
        )
    cluster_dir = tmp_path_factory.mktemp("slurm")
    if len(str(cluster_dir)) > 70:  # munge's unix socket path must stay short
        cluster_dir = Path(tempfile.mkdtemp(prefix="vanishing-slurm-"))
    try:
        started = subprocess.run(
            [str(SCRIPT), "start", str(cluster_dir)],
            capture_output=True,
            text=True,
            timeout=180,
        )
        if started.returncode != 0:
            pytest.fail(
                f"slurm-cluster.sh start failed (rc={started.returncode}):\n"
                f"{started.stdout}\n{started.stderr}",
                pytrace=False,
            )
        yield SlurmCluster(cluster_dir, {**os.environ, **slurm_env(cluster_dir)})
    finally:
        # Kills only the PIDs recorded in cluster_dir/pids (also after a failed start).
        subprocess.run(
            [str(SCRIPT), "stop", str(cluster_dir)], capture_output=True, text=True, timeout=120
        )


def test_cluster_has_cpu_and_gpu_partitions(slurm_cluster: SlurmCluster) -> None:
    out = slurm_cluster.run("sinfo", "-h", "-N", "-o", "%P %t %c %G").stdout.split("\n")
    rows = {line.split()[0]: line.split()[1:] for line in out if line.strip()}
    assert set(rows) == {"cpu*", "gpu"}, out
    for state, cpus, gres in rows.values():
        assert state == "idle" and cpus == "8" and gres.startswith("gpu:2"), rows


SNAKEFILE = textwrap.dedent(
    r"""
    GPU_JOBS = range(3)

    rule all:
        input:
            "out/cpu.txt",
            expand("out/gpu_{i}.txt", i=GPU_JOBS),

    rule cpu_job:
        output:
            "out/cpu.txt",
        shell:
            "echo job=${{SLURM_JOB_ID:-}} part=${{SLURM_JOB_PARTITION:-}}"
            " cvd=${{CUDA_VISIBLE_DEVICES:-}} > {output}"

    rule gpu_job:
        output:
            "out/gpu_{i}.txt",
        resources:
            gpu=1,
            slurm_partition="gpu",
            runtime=5,
            mem_mb=200,
        shell:
            "start=$(date +%s.%N); sleep 3; end=$(date +%s.%N); "
            "echo job=${{SLURM_JOB_ID:-}} part=${{SLURM_JOB_PARTITION:-}}"
            " cvd=${{CUDA_VISIBLE_DEVICES:-}} start=$start end=$end > {output}"
    """
)


def _read_record(path: Path) -> dict[str, str]:
    return dict(word.split("=", 1) for word in path.read_text().split())


def test_snakemake_profile_runs_jobs_on_slurm_with_gpus(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    env = {**slurm_cluster.env, "VANISHING_SLURM_PARTITION": "cpu"}
    env.pop("VANISHING_SLURM_ACCOUNT", None)  # no accounting on the test cluster
    cmd = [
        sys.executable, "-m", "snakemake",
        "--profile", str(PROFILE),
        "--snakefile", str(tmp_path / "Snakefile"),
        "--directory", str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"snakemake failed:\n{log[-6000:]}"

    cpu = _read_record(tmp_path / "out" / "cpu.txt")
    assert cpu["job"].isdigit(), cpu  # ran inside a SLURM job
    assert cpu["part"] == "cpu" and cpu["cvd"] == "", cpu

    gpu = [_read_record(tmp_path / "out" / f"gpu_{i}.txt") for i in range(3)]
    assert all(r["job"].isdigit() and r["part"] == "gpu" for r in gpu), gpu
    assert len({r["job"] for r in gpu} | {cpu["job"]}) == 4, "each job has its own SLURM job"
    assert {r["cvd"] for r in gpu} == {"0", "1"}, gpu

    # Never more than two GPU jobs at once, and jobs running together hold different GPUs.
    events = sorted(
        [(float(r["start"]), 1, r["cvd"]) for r in gpu]
        + [(float(r["end"]), -1, r["cvd"]) for r in gpu]
    )
    running: list[str] = []
    peak = 0
    for _, kind, cvd in events:
        if kind == 1:
            assert cvd not in running, f"GPU {cvd} given to two running jobs: {gpu}"
            running.append(cvd)
        else:
            running.remove(cvd)
        peak = max(peak, len(running))
    assert peak == 2, f"expected two GPU jobs to overlap, peak was {peak}: {gpu}"

    # SLURM itself knows these jobs (MinJobAge=300 keeps finished jobs in squeue).
    ids = ",".join([cpu["job"]] + [r["job"] for r in gpu])
    listed = slurm_cluster.run("squeue", "-h", "-t", "all", "-j", ids, "-o", "%i %P %T").stdout
    states = {line.split()[0]: line.split()[1:] for line in listed.splitlines()}
    assert states[cpu["job"]] == ["cpu", "COMPLETED"], listed
    assert all(states[r["job"]] == ["gpu", "COMPLETED"] for r in gpu), listed


def test_profile_passes_site_settings_as_plugin_resources(monkeypatch) -> None:
    """VANISHING_SLURM_QOS / _CONSTRAINT become the plugin's qos / constraint resources only when
    set (an empty one would still reach sbatch), VANISHING_SLURM_EXTRA its slurm_extra."""
    import yte

    for var in ("VANISHING_SLURM_QOS", "VANISHING_SLURM_CONSTRAINT", "VANISHING_SLURM_EXTRA"):
        monkeypatch.delenv(var, raising=False)
    text = (PROFILE / "config.yaml").read_text()
    unset = yte.process_yaml(text, require_use_yte=True)["default-resources"]
    assert "qos" not in unset and "constraint" not in unset and unset["slurm_extra"] == "''"
    monkeypatch.setenv("VANISHING_SLURM_QOS", "long")
    monkeypatch.setenv("VANISHING_SLURM_CONSTRAINT", "a100|h100")
    monkeypatch.setenv("VANISHING_SLURM_EXTRA", "--nice=5 --mail-type=FAIL")
    res = yte.process_yaml(text, require_use_yte=True)["default-resources"]
    assert (res["qos"], res["constraint"]) == ("'long'", "'a100|h100'")
    assert res["slurm_extra"] == "'--nice=5 --mail-type=FAIL'"


@pytest.mark.e2e
def test_a_gpu_study_can_ask_slurm_for_gres_with_the_sites_flags(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """`compute.gpu_request: gres`: the study's training job asks SLURM with --gres=gpu:1 (for
    clusters that reject --gpus) plus the profile's site flags (VANISHING_SLURM_EXTRA, a nice
    value, and VANISHING_SLURM_CONSTRAINT, the test node's feature); SLURM records all three for
    the job and starts it with one of its two fake GPUs. Training then stops, as this machine
    has no GPU: what is checked is the request and what SLURM made of it."""
    import re

    import yaml

    config = {
        "study": "gres",
        "grid": {"activation": ["relu"], "depth": [2], "norm": ["none"], "residual": [False]},
        "seeds": [0],
        "train": {"lr": [0.1], "epochs": 1},
        "compute": {"accelerator": "gpu", "gpu_request": "gres"},
    }
    (tmp_path / "gres.yaml").write_text(yaml.safe_dump(config))
    env = {
        **slurm_cluster.env,
        "VANISHING_SLURM_PARTITION": "gpu",
        "VANISHING_SLURM_EXTRA": "--nice=7",
        "VANISHING_SLURM_CONSTRAINT": "vanishing",
    }
    env.pop("VANISHING_SLURM_ACCOUNT", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [
        sys.executable, "-m", "snakemake", "--profile", str(PROFILE), "--workflow-profile", "none",
        "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
        "--configfile", str(tmp_path / "gres.yaml"), "--until", "train", "--retries", "0",
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    said = proc.stdout + proc.stderr
    assert proc.returncode != 0, "trained on a GPU this machine does not have?"
    (log,) = (tmp_path / "results" / "logs" / "train").glob("*.log")
    got = re.search(r"CUDA_VISIBLE_DEVICES=(\S+) \(SLURM job (\d+)\)", log.read_text())
    assert got, f"{log.read_text()[-3000:]}\n{said[-3000:]}"
    assert got[1] in {"0", "1"}
    job = slurm_cluster.run("squeue", "-h", "-t", "all", "-j", got[2], "-o", "%b|%y|%f|%P").stdout
    gres, nice, features, partition = job.strip().split("|")
    assert "gpu:1" in gres and nice == "7" and features == "vanishing" and partition == "gpu", job
