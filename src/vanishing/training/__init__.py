"""Training: data, models, optimizers, probes, the Lightning module and the job runner (torch)."""
