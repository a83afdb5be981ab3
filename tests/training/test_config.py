"""default.yaml is the one source of the training defaults, and the recipe of the shipped model."""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import yaml

from models.training.config import DEFAULT_CONFIG, TrainConfig

SHIPPED_SUMMARY = Path(__file__).resolve().parents[2] / "models" / "default" / "training_summary.json"


def test_every_field_and_default_comes_from_default_yaml():
    written = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    assert {f.name for f in fields(TrainConfig)} == set(written)
    assert asdict(TrainConfig()) == written
    assert TrainConfig.from_yaml() == TrainConfig()
    assert TrainConfig().labels is not TrainConfig().labels  # no shared mutable default


def test_default_yaml_is_the_recipe_of_the_shipped_model():
    shipped = json.loads(SHIPPED_SUMMARY.read_text(encoding="utf-8"))["config"]
    defaults = asdict(TrainConfig())
    assert {k: v for k, v in shipped.items() if k in defaults} == {k: defaults[k] for k in shipped if k in defaults}
    # what the shipped summary does not record is default.yaml's "off" value of a later setting
    assert defaults["questions_without_marks"] is False and defaults["label_weights"] == {}


def test_a_config_file_needs_only_what_it_changes(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("epochs: 2\nteacher: null\n", encoding="utf-8")
    config = TrainConfig.from_yaml(path, seed=None, threads=3)  # None: a command-line option not given
    assert (config.epochs, config.teacher, config.threads, config.seed) == (2, None, 3, TrainConfig().seed)
    assert config.hidden_size == TrainConfig().hidden_size


@pytest.mark.parametrize("text, message", [
    ("mlm_epochs: 1\n", "unknown keys"),  # knobs that measured no gain are gone (see the model card)
    ("teacher_folds: 2\n", "unknown keys"),
    ("student: e5\n", "unknown keys"),
    ("teacher: e5-frozen\n", "unknown teacher"),
    ("save_dtype: bfloat16\n", "float32 or float16"),
    ("inference_quantize: int4\n", "none or int8"),
    ("device: gpu\n", "unknown device"),
])
def test_unknown_or_invalid_settings_are_refused_before_any_training(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_yaml(path)
