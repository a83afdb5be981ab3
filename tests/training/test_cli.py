"""`dozor model train` through the command line: the shipped recipe at the data's size, and its errors."""

from __future__ import annotations

import json

import pytest
import torch

from services.cli import main

pytestmark = pytest.mark.slow


def test_dozor_model_train_reproduces_the_recipe_on_the_given_data(data_dir, tmp_path):
    out = tmp_path / "model"
    assert main(["model", "train", "--data-dir", str(data_dir), "--teacher", "none", "--epochs", "1",
                 "--threads", "1", "--device", "cpu", "--output", str(out)]) == 0
    summary = json.loads((out / "training_summary.json").read_text(encoding="utf-8"))
    config = summary["config"]
    # default.yaml's recipe, with the options given on the command line
    assert (config["hidden_size"], config["num_layers"], config["ngram_order"]) == (128, 2, 3)
    assert (config["teacher"], config["epochs"], config["data_dir"]) == (None, 1, str(data_dir))
    assert summary["ngrams"]["features"] > 0 and (out / "ngram_model.py").is_file()
    assert json.loads((out / "dozor.json").read_text(encoding="utf-8"))["thresholds"] == summary["thresholds"]


def test_library_errors_end_the_command_with_their_message(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="dozor model train: device: cuda was asked for"):
        main(["model", "train", "--data-dir", str(data_dir), "--device", "cuda", "--output", str(tmp_path / "m")])
    with pytest.raises(SystemExit, match="dozor model train: no training data found"):
        main(["model", "train", "--data-dir", str(tmp_path / "empty"), "--teacher", "none", "--output", str(tmp_path / "m")])
