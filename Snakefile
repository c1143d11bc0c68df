# A study of vanishing gradients: activation x depth x norm x residual (x lr x seed) MLPs,
# trained with PyTorch Lightning, tracked in MLflow, summarised into tables, figures and a report.
# Run `snakemake` (the default profile in profiles/default is loaded automatically).
import os

from snakemake.utils import min_version, validate

from vanishing.config import apply_design

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# A study config given with --configfile (or --config) brings its own design: its grid or grids
# replace the default study's sub-grids instead of merging into them; the other sections merge.
apply_design(config, workflow.config_settings.overwrite_config or {})


validate(config, "workflow/schemas/config.schema.yaml")


# The report's front page: how to read it, and FINDINGS' verdict table.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/analysis.smk"


# On a cluster only training is worth a batch job; the rest is seconds of pandas and plotting.
localrules:
    all,
    plan,
    tracking,
    aggregate,
    stats,
    figures,
    findings,
    report_tables,
    train_jobs,
    publish,


rule all:
    default_target: True
    input:
        rules.aggregate.output,
        rules.stats.output,
        rules.figures.output,
        rules.findings.output,
        rules.report_tables.output,
        rules.train_jobs.output,
        rules.publish.output,
