r"""Monte Carlo dropout BERT (Gal & Ghahramani 2016) on CLINC150 intent detection.

The deterministic BERT whose dropout stays on at test time on every transformer layer's
attention output and feed-forward output (the reference's `att` and `ffn` MC dropouts;
the encoder's other dropouts and the pooled features' dropout, at the same
--dropout_rate, act in training only, as the reference's defaults). The prediction
averages the softmax of --num_dropout_samples stochastic passes; OOD scores: 1 - max
probability, entropy and mutual information.
Reference defaults: rate 0.1, 10 samples, learning rate 1e-4, 150 epochs. Deviation: the
reference drops whole channels (channel-wise); this one drops elements, as BERT does.

  python baselines/clinc_intent/dropout.py --data_dir=/work/data \
      --output_dir=/tmp/clinc-dropout
"""
from absl import app, flags

from uncertainty_baselines.training import experiment, method, text
from uncertainty_baselines.training import flags as ub_flags

text.define_text_flags(train_epochs=150, learning_rate=1e-4)
flags.DEFINE_integer("num_dropout_samples", 10, "Stochastic forward passes averaged at evaluation.")
FLAGS = flags.FLAGS


def validate(config) -> list[str]:
    return ub_flags.at_least_one_errors(config, "num_dropout_samples")


def model_spec(config, data) -> dict:
    return {"name": "bert_mc_dropout", "kwargs": text.bert_kwargs(config, data)}


def mc_dropout() -> method.Method:
    return method.Method(
        "mc_dropout", model_spec=model_spec, validate=validate, method_flags=("num_dropout_samples",),
        predict=method.stochastic_passes(FLAGS.num_dropout_samples),
        ood_scores=("msp", "entropy", "mutual_information"))


if __name__ == "__main__":
    app.run(lambda argv: experiment.run_from_flags(FLAGS, mc_dropout(), task=text.TEXT))
