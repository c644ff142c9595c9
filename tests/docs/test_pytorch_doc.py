"""docs/pytorch.md's example, run as written (its only python block) on a tiny prepared
CIFAR-10: it trains, and it scores every test example exactly once."""
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import jax_helpers

REPO = pathlib.Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "pytorch.md"


def example_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 1, "docs/pytorch.md should hold exactly one python example"
    return blocks[0]


def test_the_documented_pytorch_loop_runs_and_scores_every_test_example(tmp_path_factory, tmp_path):
    pytest.importorskip("torch")
    data_dir = jax_helpers.prepared(tmp_path_factory)  # 160 training / 40 test images.
    script = tmp_path / "pytorch_example.py"
    # The doc's global batch of 128 gives one training step and one padded test batch here;
    # 16 gives 10 steps and a last test batch of 8 real rows + 8 padding rows.
    script.write_text(example_code().replace("BATCH = 128", "BATCH = 16"))
    env = {**os.environ, "UB_DATA_DIR": str(data_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.strip().splitlines()[-1])
    for name in ("test/accuracy", "test/negative_log_likelihood", "test/ece", "test/brier"):
        assert np.isfinite(results[name]), name
    # All 40 test images were scored once (the batches held 48 rows, 8 of them padding), and
    # the classes (distinct colours) are learned well above chance (0.1).
    assert results["test/num_examples"] == 40
    assert results["test/accuracy"] * 40 == pytest.approx(round(results["test/accuracy"] * 40), abs=1e-9)
    assert results["test/accuracy"] > 0.3
