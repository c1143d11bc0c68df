rule stats:
    """Per-cell summaries with confidence intervals, learning-rate selection on validation data,
    the comparisons with effect sizes and Holm-corrected p-values, the factorial ANOVA, and the
    mean-field predictions beside the measured slopes."""
    input:
        rules.aggregate.output,
    output:
        expand("results/tables/{name}.csv", name=STATS_TABLES),
    log:
        "results/logs/stats.log",
    params:
        target=config["analysis"]["target_accuracy"],
    shell:
        "vanishing stats --tables results/tables --target-accuracy {params.target} 2> {log}"


rule figures:
    """Every figure, as PNG (in the report) and PDF (for papers)."""
    input:
        rules.aggregate.output,
        rules.stats.output,
    output:
        png=[
            report(
                f"results/figures/{f.name}.png",
                caption=f.caption,
                category=f.category,
                subcategory=f.subcategory,
            )
            for f in FIGURES
        ],
        pdf=[f"results/figures/{f.name}.pdf" for f in FIGURES],
    log:
        "results/logs/figures.log",
    shell:
        "vanishing figures --tables results/tables --out results/figures 2> {log}"


rule findings:
    """What the data says, claim by claim, generated from the tables (never hand-written)."""
    input:
        rules.stats.output,
    output:
        md=report(
            "results/FINDINGS.md",
            caption="../report/findings.rst",
            category="Findings and statistics",
            subcategory="Findings",
        ),
        # the verdict table in reStructuredText, for the report's front page (workflow.rst)
        rst="results/findings_verdicts.rst",
    log:
        "results/logs/findings.log",
    shell:
        "vanishing findings --tables results/tables --out {output.md} --rst {output.rst}"
        " 2> {log}"


rule report_tables:
    """The statistics tables, as the report shows them."""
    input:
        expand("results/tables/{name}.csv", name=REPORT_TABLES),
    output:
        report(
            directory("results/report_tables"),
            patterns=["{name}.csv"],
            caption="../report/tables.rst",
            category="Findings and statistics",
            subcategory="Tables",
        ),
    log:
        "results/logs/report_tables.log",
    shell:
        "mkdir -p {output} && cp {input} {output}/ 2> {log}"


rule train_jobs:
    """Each training job's time and memory (Snakemake's benchmark of the job) beside what the
    job reports of itself (cells, seconds in imports and inside fit), for the report."""
    input:
        benchmarks=expand(rules.train.benchmark, job=JOBS),
        manifests=expand(rules.train.output[0], job=JOBS),
    output:
        report(
            "results/tables/train_jobs.csv",
            caption="../report/train_jobs.rst",
            category="Findings and statistics",
            subcategory="Compute",
        ),
    log:
        "results/logs/train_jobs.log",
    shell:
        "vanishing train-jobs --benchmarks {input.benchmarks} --manifests {input.manifests}"
        " --out {output} 2> {log}"


rule publish:
    """Attach the tables, figures and findings to the study's parent run in MLflow, each cell's
    summary at its selected lr to its cell run, and FINDINGS' verdicts as the study run's
    description."""
    input:
        tracking=rules.tracking.output[0],
        tables=rules.aggregate.output,
        stats=rules.stats.output,
        figures=rules.figures.output.png,
        findings=rules.findings.output.md,
        selected=rules.stats.output[STATS_TABLES.index("selected")],
        runs=rules.aggregate.output.runs,
    output:
        done="results/published.txt",
        config="results/config.json",
    log:
        "results/logs/publish.log",
    params:
        config=json.dumps(config, sort_keys=True),
    shell:
        "vanishing publish --tracking {input.tracking} --done {output.done}"
        " --config-json {params.config:q} --findings {input.findings}"
        " --selected {input.selected} --runs {input.runs}"
        " --files {input.tables} {input.stats} {input.figures} {input.findings} 2> {log}"
