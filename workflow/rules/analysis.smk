STATS_TABLES = ["summary", "selected", "comparisons", "anova", "depth_slopes"]
FIGURES = [
    "trainability",
    "gradient_profile_init",
    "grad_ratio_init",
    "lr_sweep",
    "training_curves",
    "gradient_flow_heatmap",
    "saturation",
    "theory_overlay",
]
FIGURE_CATEGORY = {
    "trainability": "Trainability",
    "lr_sweep": "Trainability",
    "training_curves": "Trainability",
    "gradient_profile_init": "Gradient flow",
    "grad_ratio_init": "Gradient flow",
    "gradient_flow_heatmap": "Gradient flow",
    "saturation": "Gradient flow",
    "theory_overlay": "Theory",
}


rule stats:
    """Per-cell summaries with confidence intervals, learning-rate selection on validation data,
    the comparisons with effect sizes and Holm-corrected p-values, the factorial ANOVA, and the
    mean-field predictions beside the measured slopes."""
    input:
        rules.aggregate.output.runs,
        rules.aggregate.output.layers,
        rules.aggregate.output.probe_inputs,
    output:
        expand("results/tables/{name}.csv", name=STATS_TABLES),
        theory="results/tables/theory.csv",
        profiles="results/tables/theory_profiles.csv",
    log:
        "results/logs/stats.log",
    conda:
        "../../environment.yml"
    shell:
        "vanishing stats --tables results/tables 2> {log}"


rule figures:
    """Every figure, as PNG (in the report) and PDF (for papers)."""
    input:
        rules.aggregate.output,
        rules.stats.output,
    output:
        png=[
            report(
                f"results/figures/{name}.png",
                caption=f"../report/{name}.rst",
                category=FIGURE_CATEGORY[name],
            )
            for name in FIGURES
        ],
        pdf=expand("results/figures/{name}.pdf", name=FIGURES),
    log:
        "results/logs/figures.log",
    conda:
        "../../environment.yml"
    shell:
        "vanishing figures --tables results/tables --out results/figures 2> {log}"


rule findings:
    """What the data says, claim by claim, generated from the tables (never hand-written)."""
    input:
        rules.stats.output,
    output:
        report(
            "results/FINDINGS.md",
            caption="../report/findings.rst",
            category="Statistics",
        ),
    log:
        "results/logs/findings.log",
    conda:
        "../../environment.yml"
    shell:
        "vanishing findings --tables results/tables --out {output} 2> {log}"


rule report_tables:
    """The statistics tables, as the report shows them."""
    input:
        expand(
            "results/tables/{name}.csv",
            name=["selected", "comparisons", "anova", "theory"],
        ),
    output:
        report(
            directory("results/report_tables"),
            patterns=["{name}.csv"],
            caption="../report/tables.rst",
            category="Statistics",
        ),
    log:
        "results/logs/report_tables.log",
    conda:
        "../../environment.yml"
    shell:
        "mkdir -p {output} && cp {input} {output}/ 2> {log}"


rule publish:
    """Attach the tables, figures and findings to the study's parent run in MLflow."""
    input:
        tracking=rules.tracking.output[0],
        tables=rules.aggregate.output,
        stats=rules.stats.output,
        figures=rules.figures.output.png,
        findings=rules.findings.output,
    output:
        done="results/published.txt",
        config="results/config.json",
    log:
        "results/logs/publish.log",
    conda:
        "../../environment.yml"
    params:
        config=json.dumps(config, sort_keys=True),
    shell:
        "vanishing publish --tracking {input.tracking} --done {output.done}"
        " --config-json {params.config:q}"
        " --files {input.tables} {input.stats} {input.figures} {input.findings} 2> {log}"
