rule train:
    """Train one job's cells, every (lr, seed) replica of a cell as one batched model; each cell's
    files land in results/runs/<cell>/ as it finishes, so a rerun continues where it stopped.
    """
    input:
        tracking=rules.tracking.output[0],
    output:
        "results/jobs/{job}.json",
    log:
        "results/logs/train/{job}.log",
    conda:
        "../../environment.yml"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=2000,
        runtime=120,
        gpu=1 if GPU else 0,
        gpu_model=config["compute"]["gpu_model"] if GPU else "",
    params:
        args=train_args,
    shell:
        "vanishing train {params.args} --threads {threads} --tracking {input.tracking}"
        " --out-root results/runs --manifest {output} 2> {log}"
