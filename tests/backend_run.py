"""Runs a test program in a fresh Python on another Keras backend (the backend is fixed
when Keras is first imported, so it cannot change inside the test process)."""
import os
import pathlib
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_on_backend(program: str, backend: str, timeout: float = 300) -> str:
    """Runs `program` with KERAS_BACKEND=`backend` on this checkout; skips when the backend
    is not installed; fails unless it exits 0 and prints "ok <backend>". Returns stdout."""
    pytest.importorskip(backend)
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": path}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                            timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"ok {backend}" in result.stdout, result.stdout[-2000:]
    return result.stdout
