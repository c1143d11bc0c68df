"""Report: figures, their shared plotting, and the generated FINDINGS (no torch)."""
