"""experimental/gp_length_scale/probe.py end to end on the tiny CLINC data and BERT folder:
every query of each set is featurised once, and each length-scale gets a finite record."""
import json
import subprocess
import sys

import clinc_e2e
from clinc_e2e import NUM_OOS_TEST, NUM_TEST, NUM_TRAIN

PROBE = clinc_e2e.script_runs.REPO / "experimental" / "gp_length_scale" / "probe.py"


def probe(out, data_dir, bert_dir, *args):
    return subprocess.run([sys.executable, str(PROBE), f"--output_dir={out}", f"--data_dir={data_dir}",
                           f"--bert_dir={bert_dir}", "--batch_size=64", *args],
                          capture_output=True, text=True, timeout=300, cwd=clinc_e2e.script_runs.REPO)


def test_the_probe_scores_every_query_at_each_length_scale(clinc_data_dir, clinc_bert_dir, tmp_path):
    done = probe(tmp_path, clinc_data_dir, clinc_bert_dir, "--length_scales=0.5,8")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "probe.json").read_text())
    assert result["num_queries"] == {"train": NUM_TRAIN, "test_in_domain": NUM_TEST, "test_out_of_scope": NUM_OOS_TEST}
    assert [r["length_scale"] for r in result["records"]] == [0.5, 8.0]
    assert result["head"]["random_feature_type"] == "fourier" and not result["head"]["scale_features"]  # sngp.py's.
    for record in result["records"]:
        assert 0 <= record["test_accuracy"] <= 1 and 0 <= record["ood_auroc_variance"] <= 1
        assert 0 <= record["kernel_other_intent"] <= 1
        assert record["kernel_same_intent"] is None  # One test query per intent: no pair to measure.
    # A longer length-scale never lowers the kernel between the same two queries.
    small, large = result["records"]
    assert large["kernel_other_intent"] > small["kernel_other_intent"]


def test_a_non_positive_length_scale_is_refused(clinc_data_dir, clinc_bert_dir, tmp_path):
    refused = probe(tmp_path, clinc_data_dir, clinc_bert_dir, "--length_scales=2,0")
    assert refused.returncode != 0 and "--length_scales must all be > 0, got ['2', '0']" in refused.stderr
    assert not (tmp_path / "probe.json").exists()
