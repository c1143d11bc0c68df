rule aggregate:
    """Concatenate the per-cell files (not MLflow) into the study's tables."""
    input:
        expand(rules.train.output[0], job=JOBS),
    output:
        runs="results/tables/runs.csv",
        layers="results/tables/layer_gradients.csv",
        curves="results/tables/curves.csv",
        probe_inputs="results/tables/probe_inputs.csv",
    log:
        "results/logs/aggregate.log",
    conda:
        "../../environment.yml"
    shell:
        "vanishing aggregate --manifests {input} --out results/tables 2> {log}"
