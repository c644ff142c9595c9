"""The text task's model kwargs: what a run records for `ub.models.load` to rebuild it."""
from types import SimpleNamespace

from uncertainty_baselines.training import text

DATA = SimpleNamespace(num_classes=151, input_shape=(32,))


def test_a_relative_bert_dir_is_recorded_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kwargs = text.bert_kwargs(SimpleNamespace(bert_dir="minilm", dropout_rate=0.1, seed=3), DATA)
    assert kwargs == {"num_classes": 151, "bert_dir": str(tmp_path.resolve() / "minilm"), "max_seq_length": 32,
                      "dropout_rate": 0.1, "seed": 3}


def test_the_default_bert_dir_stays_unset_to_be_found_where_the_run_is_loaded():
    assert text.bert_kwargs(SimpleNamespace(bert_dir="", dropout_rate=0.1, seed=0), DATA)["bert_dir"] is None
