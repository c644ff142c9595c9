"""Post-hoc uncertainty on a finished classification run: see experimental/posthoc/README.md."""
