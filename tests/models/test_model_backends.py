"""JAX and PyTorch backends, each in a subprocess (Keras fixes the backend at import)."""
import json
import os
import pathlib
import subprocess
import sys

import pytest

PROBE = pathlib.Path(__file__).with_name("backend_probe.py")
REPO_ROOT = PROBE.parents[2]


def run_probe(backend: str) -> dict:
    # The repo first on the path: the probe tests this checkout, whatever is installed; then
    # tests/ for the probe's test models (sanity_models) and tests/models (method_models).
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), str(REPO_ROOT / "tests"), str(PROBE.parent),
                                         os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": path}
    out = subprocess.run([sys.executable, str(PROBE)], env=env, capture_output=True,
                         text=True, timeout=500)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=["jax", "torch"])
def probe(request):
    pytest.importorskip(request.param)
    return run_probe(request.param)


def test_wide_resnet_passes_the_smoke_checks(probe):
    assert probe["cli_status"] == 0


def test_probe_tests_this_checkout(probe):
    assert probe["package"] == str(REPO_ROOT / "uncertainty_baselines")


def test_two_head_method_model_runs(probe):
    assert probe["two_head_logits_shape"] == [2, 2, 4]


def test_backend_gradient_and_variable_checks_can_fail(probe):
    assert probe["control_passes"]
    assert not probe["mixing_passes"]
    assert not probe["unused_passes"]


def test_torch_model_trains_in_a_plain_pytorch_loop(probe):
    if probe["backend"] != "torch":
        pytest.skip("torch only")
    loop = probe["torch_loop"]
    assert loop["is_module"]
    assert loop["torch_trainable"] == loop["keras_trainable"] > 0
    assert loop["losses"][-1] < 0.8 * loop["losses"][0]
