"""ub.metrics is framework-free: importing it must not load TensorFlow, JAX or torch."""
import subprocess
import sys


def test_import_loads_no_framework():
    code = ("import sys, uncertainty_baselines as ub; ub.metrics.ClassificationMetrics; "
            "print(sorted(m for m in ('tensorflow', 'jax', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
