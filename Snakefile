# A study of vanishing gradients: activation x depth x norm x residual (x lr x seed) MLPs,
# trained with PyTorch Lightning, tracked in MLflow, summarised into tables, figures and a report.
# Run `snakemake` (the default profile in workflow/profiles/default is loaded automatically).
import os

from snakemake.utils import min_version, validate


min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/analysis.smk"


rule all:
    input:
        rules.aggregate.output,
        rules.stats.output,
        rules.figures.output,
        rules.findings.output,
        rules.report_tables.output,
        rules.publish.output,
    default_target: True
