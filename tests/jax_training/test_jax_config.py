"""Experiment configs: get_config files and --config.<field>= overrides, with clear errors."""
import pathlib

import pytest

from uncertainty_baselines.jax_training import config as config_lib

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = REPO / "baselines" / "vit_jax" / "configs"
DETERMINISTIC = str(CONFIGS / "cifar10_vit_deterministic.py")


def test_overrides_change_fields_with_their_types():
    config = config_lib.parse_config([f"--config={DETERMINISTIC}", "--config.model.width=32",
                                      "--config.lr.base=0.5", "--config.ood_datasets=('svhn_cropped',)",
                                      "--unrelated_flag"])
    assert config.model.width == 32 and config.lr.base == 0.5 and config.ood_datasets == ("svhn_cropped",)
    assert config.model.depth == 4  # Untouched fields keep the file's values.


def test_space_separated_config_path_is_accepted():
    assert config_lib.parse_config(["--config", DETERMINISTIC]).batch_size == 128


def test_a_file_without_get_config_is_refused(tmp_path):
    bad = tmp_path / "no_get_config.py"
    bad.write_text("import ml_collections\n\ndef config():\n    return ml_collections.ConfigDict()\n")
    with pytest.raises(config_lib.ConfigError, match=r"no_get_config.py does not define get_config\(\)"):
        config_lib.parse_config([f"--config={bad}"])
    with pytest.raises(config_lib.ConfigError, match="does not exist"):
        config_lib.parse_config([f"--config={tmp_path / 'absent.py'}"])
    with pytest.raises(config_lib.ConfigError, match="--config=PATH is required"):
        config_lib.parse_config(["--config.model.width=3"])


def test_an_unknown_field_is_named_with_the_closest_one():
    with pytest.raises(config_lib.ConfigError) as e:
        config_lib.parse_config([f"--config={DETERMINISTIC}", "--config.model.widht=3"])
    assert "--config.model.widht: config.model" in str(e.value)
    assert "has no field 'widht'; did you mean 'width'?" in str(e.value)
    with pytest.raises(config_lib.ConfigError, match="--config.learning_rate: the config .* has no field"):
        config_lib.parse_config([f"--config={DETERMINISTIC}", "--config.learning_rate=3"])


def test_a_value_of_the_wrong_type_names_the_field_and_its_type():
    with pytest.raises(config_lib.ConfigError) as e:
        config_lib.parse_config([f"--config={DETERMINISTIC}", "--config.model.width=wide"])
    assert "--config.model.width=wide: wrong type, the field is int (the file sets 128)" in str(e.value)
    with pytest.raises(config_lib.ConfigError, match="--config.lr.base=fast: wrong type, the field is float"):
        config_lib.parse_config([f"--config={DETERMINISTIC}", "--config.lr.base=fast"])


def test_flatten_gives_json_ready_dotted_names():
    config = config_lib.load_config_file(DETERMINISTIC)
    flat = config_lib.flatten(config)
    assert flat["model.patch_size"] == [4, 4] and flat["lr.base"] == 1e-3 and "model" not in flat


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.py")), ids=lambda p: p.name)
def test_every_config_documents_its_exact_command(path):
    config = config_lib.load_config_file(path)
    doc = path.read_text().split('"""')[1]
    script = "batchensemble.py" if config.method == "batchensemble" else "deterministic.py"
    assert f"baselines/vit_jax/{script}" in doc and f"--config=baselines/vit_jax/configs/{path.name}" in doc


def test_a_field_given_twice_keeps_its_last_value():
    config = config_lib.parse_config([f"--config={DETERMINISTIC}", "--config.model.patch_size=(8,8)",
                                      "--config.model.width=8", "--config.model.patch_size=(2,2)"])
    assert config.model.patch_size == (2, 2) and config.model.width == 8
