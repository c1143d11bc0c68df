rule tracking:
    """Create the MLflow store, the experiment and the study's parent run once, before the
    fan-out (concurrent first-time initialisation of one SQLite store crashes). Fails at once,
    naming the URI, when a tracking server is unreachable."""
    output:
        "results/tracking.json",
    log:
        "results/logs/tracking.log",
    params:
        uri=TRACKING_URI,
        study=config["study"],
    shell:
        "vanishing init-tracking --tracking-uri {params.uri:q} --study {params.study:q}"
        " --out {output} 2> {log}"
