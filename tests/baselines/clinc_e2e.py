"""Helpers of the CLINC-method end-to-end tests: a tiny CLINC150-format json prepared with
the real prepare command, a tiny random BERT folder, and script runs."""
import json
import pathlib
import shutil
import subprocess
import sys

import script_runs
from script_runs import without_timing  # noqa: F401 (re-exported)

NUM_INTENTS = 150
# data_full.json key -> items: 2 training queries per intent, 1 test query for the first
# NUM_TEST_INTENTS intents, NUM_OOS_TEST out-of-scope test queries.
NUM_TEST_INTENTS, NUM_OOS_TEST = 90, 30
NUM_TRAIN, NUM_TEST = 2 * NUM_INTENTS, NUM_TEST_INTENTS
NUM_COMBINED = NUM_TEST + NUM_OOS_TEST
WORDS = ("play", "song", "time", "weather", "bank", "balance", "alarm", "timer", "recipe", "flight",
         "hotel", "car", "music", "light", "phone", "card", "pay", "bill", "book", "cancel",
         "transfer", "account", "meeting", "calendar", "email")
OOS_WORDS = ("zebra", "volcano", "poetry", "galaxy", "penguin", "saxophone")
TINY_BERT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def query(intent: int, variant: int) -> str:
    """A query of `intent`: the two words that identify it, and a filler word."""
    return f"{WORDS[intent % len(WORDS)]} {WORDS[intent // len(WORDS)]} {('please', 'now', 'today')[variant]}"


def tiny_clinc_json() -> dict:
    intents = [f"intent_{k:03d}" for k in range(NUM_INTENTS)]
    oos = [[f"{OOS_WORDS[i % len(OOS_WORDS)]} {OOS_WORDS[(i // 6) % len(OOS_WORDS)]}", "oos"] for i in range(40)]
    return {"train": [[query(k, v), intents[k]] for k in range(NUM_INTENTS) for v in (0, 1)],
            "val": [[query(k, 2), intents[k]] for k in range(3)],
            "test": [[query(k, 2), intents[k]] for k in range(NUM_TEST_INTENTS)],
            "oos_train": oos[:2], "oos_val": oos[2:3], "oos_test": oos[10:10 + NUM_OOS_TEST]}


def prepare_tiny_clinc(root: pathlib.Path) -> pathlib.Path:
    """The tiny json prepared by the real command (MiniLM's vocabulary); returns the data_dir."""
    source = root / "data_full.json"
    source.write_text(json.dumps(tiny_clinc_json()))
    subprocess.run([sys.executable, "-m", "uncertainty_baselines.datasets.prepare", "clinc_intent",
                    f"--source={source}", f"--data_dir={root / 'tfds'}", "--nocheck_counts"],
                   check=True, capture_output=True, timeout=300)
    return root / "tfds"


def make_tiny_bert(path: pathlib.Path) -> pathlib.Path:
    """A random 2-layer BERT (hidden 32, no dropout) saved by transformers with safetensors,
    with MiniLM's vocabulary (the one the data is tokenised with)."""
    import torch
    import transformers

    from uncertainty_baselines.models import bert
    torch.manual_seed(0)
    vocab = bert.default_bert_dir() / "vocab.txt"
    config = transformers.BertConfig(vocab_size=sum(1 for _ in open(vocab, encoding="utf-8")), **TINY_BERT)
    transformers.BertModel(config).save_pretrained(path)
    shutil.copy(vocab, path / "vocab.txt")
    return path


def deterministic_args(bert_dir: pathlib.Path, *extra: str) -> list[str]:
    """deterministic.py on the tiny data: 9 steps per epoch, 2 epochs, no dropout (so 2
    replicas compute what 1 device does, up to float summation order)."""
    return [f"--bert_dir={bert_dir}", "--batch_size=32", "--eval_batch_size=64", "--train_epochs=2",
            "--dropout_rate=0", "--learning_rate=5e-3", "--steps_per_loop=3", "--log_interval_s=0", "--seed=7",
            *extra]


def launch(script, args, data_dir, output_dir):
    """Starts baselines/clinc_intent/<script>.py as a user would; stdout and stderr merged."""
    return script_runs.launch("clinc_intent", script, args, data_dir, output_dir)


def run(script, args, data_dir, output_dir, expect_ok=True):
    return script_runs.run("clinc_intent", script, args, data_dir, output_dir, expect_ok)


def record(run_dir: pathlib.Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def resume_from_first_checkpoint(script, args, data_dir, finished_dir, output_dir):
    """Reruns a copy of finished run `finished_dir` from its first checkpoint (see
    script_runs.rerun_a_copy_from_its_first_checkpoint); returns the rerun's console output."""
    return script_runs.rerun_a_copy_from_its_first_checkpoint("clinc_intent", script, args, data_dir,
                                                              finished_dir, output_dir)
