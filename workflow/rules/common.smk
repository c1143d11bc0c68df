import json
import os
import sys

from vanishing.config import expand_jobs, save_cells
from vanishing.outputs import CELL_TABLES, REPORT_TABLES, STATS_TABLES
from vanishing.report.catalog import FIGURES


envvars:
    "PATH",


try:
    JOBS = expand_jobs(config)
except ValueError as e:
    raise WorkflowError(f"Invalid config: {e}") from None

TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI") or config["mlflow"]["tracking_uri"]
# Jobs find the package's command line `vanishing` beside the interpreter running Snakemake,
# also when its virtual environment is not activated (jobs, also SLURM's, inherit PATH).
os.environ["PATH"] = os.pathsep.join(
    [os.path.dirname(sys.executable), os.environ["PATH"]]
)
GPU = config["compute"]["accelerator"] == "gpu"
# A GPU job asks SLURM for its device with --gpus (the plugin's gpu and gpu_model resources) or,
# where a cluster rejects --gpus, with --gres (the plugin's gres resource).
GRES = GPU and config["compute"]["gpu_request"] == "gres"


def gres():
    """The gres resource of a training job: gpu[:model]:1 when GPUs are requested as GRES."""
    if not GRES:
        return ""
    model = config["compute"]["gpu_model"]
    return f"gpu:{model}:1" if model else "gpu:1"


def job_plan(wildcards):
    """The JSON text of one training job's cells, whole (``vanishing.config.save_cells``)."""
    return save_cells(JOBS[wildcards.job])
