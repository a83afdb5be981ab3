"""Fixtures of the training tests: the synthetic datasets, and the tiny default-recipe model trained once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.training.synthetic import tiny_config, write_datasets


@dataclass
class Trained:
    """A checkpoint written by ``train_default`` and the summary it returned."""

    path: Path
    summary: dict


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return write_datasets(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def trained(data_dir, tmp_path_factory) -> Trained:
    """default.yaml's recipe (n-gram part included) at the tiny size, without a teacher: trained once."""
    from models.training.train import train_default

    out = tmp_path_factory.mktemp("trained") / "model"
    return Trained(out, train_default(tiny_config(data_dir), out))


@pytest.fixture(scope="session")
def plain(data_dir, tmp_path_factory) -> Path:
    """An untrained BERT-only checkpoint (the student before training, with thresholds 0.5)."""
    from models.training.model import build_student
    from models.training.train import save_checkpoint

    config = tiny_config(data_dir)
    model, tokenizer, _ = build_student(config, [e.text for e in config.corpus().train], 258)
    out = tmp_path_factory.mktemp("plain") / "model"
    save_checkpoint(model, tokenizer, out, {label: 0.5 for label in config.labels})
    return out
