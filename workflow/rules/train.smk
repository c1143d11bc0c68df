rule plan:
    """Write one training job's cells, whole, to a file: the job trains exactly these. The file
    changes (and the job reruns) only when the job's cells do."""
    output:
        "results/plan/{job}.json",
    log:
        "results/logs/plan/{job}.log",
    priority: 100  # every plan before any training: `vanishing status` counts the cells from them
    params:
        cells=job_plan,
    run:
        with open(output[0], "w") as f:
            f.write(params.cells)


rule train:
    """Train one job's cells, every (lr, seed) replica of a cell as one batched model; each cell's
    files land in results/runs/<cell>/ as it finishes, so a rerun continues where it stopped.
    """
    input:
        tracking=rules.tracking.output[0],
        plan=rules.plan.output[0],
    output:
        "results/jobs/{job}.json",
    log:
        "results/logs/train/{job}.log",
    benchmark:
        "results/benchmarks/train/{job}.tsv"
    threads: config["compute"]["threads"]
    resources:
        mem_mb=2000,
        runtime=120,
        gpu=1 if GPU and not GRES else 0,
        gpu_model=config["compute"]["gpu_model"] if GPU and not GRES else "",
        gres=gres(),
    params:
        accelerator=config["compute"]["accelerator"],
        jobs_per_gpu=config["compute"]["jobs_per_gpu"],
    shell:
        "vanishing train --plan {input.plan} --threads {threads} --tracking {input.tracking}"
        " --accelerator {params.accelerator} --jobs-per-gpu {params.jobs_per_gpu}"
        " --out-root results/runs --manifest {output}"
        " --progress results/progress/{wildcards.job}.json 2> {log}"
