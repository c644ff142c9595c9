"""Which run directories an ensemble may train as its members: a started member keeps what
it evaluates (its evaluation flags do not change its weights) but must share the training flags."""
import json
import types

from absl import flags as absl_flags

from image_flag_values import image_flags
from uncertainty_baselines.runs import output_dir
from uncertainty_baselines.training import experiment, flags


absl_flags.DEFINE_float("flag_added_later", 0.5, "A flag that members started before it existed lack.")


def ensemble_flags(**overrides) -> types.SimpleNamespace:
    return image_flags(seed=0, overwrite=False, run_dirs=[], ensemble_size=2, train_missing_members=True,
                       **overrides)


def start_member(config, run_dir, index) -> None:
    """Write the member's flags.json as its script's run lifecycle does when it starts."""
    output_dir.prepare_output_dir(run_dir, vars(experiment.member_config(config, run_dir, index)),
                                  ignore=flags.RESULT_NEUTRAL_FLAGS)


def test_a_started_member_keeps_its_own_evaluation_flags(tmp_path):
    started = tmp_path / "seed1"
    start_member(ensemble_flags(severities=["3"], eval_on_ood=True), started, 1)
    config = ensemble_flags(severities=["1", "2"], corruption_types=["fog"])
    member = experiment.member_config(config, started, 1)
    assert member.severities == ["3"] and member.eval_on_ood and member.seed == 1
    assert experiment.member_conflicts(config, [tmp_path / "seed0", started]) == []
    assert output_dir.prepare_output_dir(started, vars(member), ignore=flags.RESULT_NEUTRAL_FLAGS)  # Resumes.
    fresh = experiment.member_config(config, tmp_path / "seed0", 0)
    assert fresh.severities == ["1", "2"] and fresh.corruption_types == []  # The ensemble scores them.


def test_a_started_member_with_other_training_flags_is_named(tmp_path):
    started = tmp_path / "seed1"
    start_member(ensemble_flags(train_epochs=3), started, 1)
    errors = experiment.member_conflicts(ensemble_flags(), [tmp_path / "seed0", started])
    assert len(errors) == 1 and f"ensemble member {started} was started with other flags" in errors[0]
    assert "train_epochs: 3 -> 2" in errors[0]


def test_a_member_older_than_a_flag_counts_as_made_at_its_default(tmp_path):
    started = tmp_path / "seed1"
    start_member(ensemble_flags(flag_added_later=0.5), started, 1)
    recorded = json.loads((started / "flags.json").read_text())
    del recorded["flag_added_later"]  # As a member trained before the flag was added.
    (started / "flags.json").write_text(json.dumps(recorded))
    assert experiment.member_conflicts(ensemble_flags(flag_added_later=0.5), [tmp_path / "seed0", started]) == []
    errors = experiment.member_conflicts(ensemble_flags(flag_added_later=1.0), [tmp_path / "seed0", started])
    assert len(errors) == 1 and "flag_added_later: 0.5 -> 1.0" in errors[0]


def test_a_member_older_than_an_evaluation_flag_keeps_its_default(tmp_path, monkeypatch):
    started = tmp_path / "seed1"
    start_member(ensemble_flags(severities=["1", "2", "3"]), started, 1)
    recorded = json.loads((started / "flags.json").read_text())
    del recorded["severities"]  # As a member started before --severities existed.
    (started / "flags.json").write_text(json.dumps(recorded))
    monkeypatch.setattr(flags, "flag_defaults", lambda names: {"severities": ["1", "2", "3"]})
    config = ensemble_flags(severities=["2"])
    assert experiment.member_config(config, started, 1).severities == ["1", "2", "3"]  # Its own, by default.
    assert experiment.member_conflicts(config, [tmp_path / "seed0", started]) == []
