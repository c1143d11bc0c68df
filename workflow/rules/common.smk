import json
import os
import sys

from vanishing.config import SETTINGS, expand_jobs, study_lrs


envvars:
    "PATH",


try:
    JOBS = expand_jobs(config)
except ValueError as e:
    raise WorkflowError(f"Invalid config: {e}") from None

LRS = study_lrs(config)
GRID_AXES = [axis for axis in config["grid"] if axis != "lr"]
TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or config["mlflow"]["tracking_uri"]
# Jobs find the package's command line `vanishing` beside the interpreter running Snakemake,
# also when its virtual environment is not activated (jobs, also SLURM's, inherit PATH).
os.environ["PATH"] = os.pathsep.join(
    [os.path.dirname(sys.executable), os.environ["PATH"]]
)
GPU = config["compute"]["accelerator"] == "gpu"


def train_args(wildcards):
    """Command-line flags of one training job: each setting's values across the job's cells."""
    cells = JOBS[wildcards.job]
    args = []
    for key in SETTINGS:
        if key in ("data", "lr"):
            continue
        values = list(dict.fromkeys(c[key] for c in cells))
        spelt = [str(v).lower() if isinstance(v, bool) else str(v) for v in values]
        args.append(f"--{key.replace('_', '-')} " + " ".join(spelt))
    data = config["data"]
    args += [
        f"--probe-size {config['train']['probe_size']}",
        f"--lr {' '.join(map(str, LRS))}",
        f"--seeds {' '.join(map(str, config['seeds']))}",
        f"--data {data['name']} --val-fraction {data['val_fraction']}",
        f"--test-fraction {data['test_fraction']} --split-seed {data['split_seed']}",
        f"--mnist1d-samples {data['mnist1d_samples']}",
        f"--name-axes {' '.join(GRID_AXES)}",
        f"--accelerator {config['compute']['accelerator']}",
        f"--jobs-per-gpu {config['compute']['jobs_per_gpu']}",
    ]
    return " ".join(args)
