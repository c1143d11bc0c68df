rule aggregate:
    """Concatenate the per-cell files (not MLflow) into the study's tables."""
    input:
        expand(rules.train.output[0], job=JOBS),
    output:
        **{name: f"results/tables/{name}.csv" for name in CELL_TABLES},
    log:
        "results/logs/aggregate.log",
    shell:
        "vanishing aggregate --manifests {input} --out results/tables 2> {log}"
