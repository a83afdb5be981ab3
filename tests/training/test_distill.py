"""Distillation from a (tiny, random) e5 teacher: soft targets for every label, cached, and a student that learns."""

from __future__ import annotations

import numpy as np
import pytest

from models.classifier import TextClassifier
from models.training.distill import prune_teacher, soft_targets
from models.training.train import train_default
from tests.training.e5_file import write_e5_file
from tests.training.synthetic import CLEAN, LABELS, TOXIC, every, tiny_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def teacher_config(data_dir, tmp_path_factory):
    """A config with the e5 teacher read from a file pruned to the corpus' vocabulary."""
    root = tmp_path_factory.mktemp("teacher")
    write_e5_file(root / "tiny-e5.bin", seed=3)
    config = tiny_config(data_dir, teacher="e5", teacher_model_path=str(root / "tiny-e5.bin"), teacher_frozen_layers=1,
                         teacher_tfidf_weight=0.5, distill_weight=0.5, teacher_cache_dir=str(root / "cache"),
                         learning_rate=3e-3)  # at 1e-2 the distilled tiny student can sit on a plateau for 8+ epochs
    summary = prune_teacher(config, root / "pruned-e5.bin")
    assert summary["mismatches"] == 0 and summary["texts"] > 500  # training, transfer, validation, held-out texts
    assert summary["kept"] < summary["pieces"] and (root / "pruned-e5.bin").stat().st_size == summary["pruned_bytes"]
    config.teacher_model_path = str(root / "pruned-e5.bin")
    return config


def test_teacher_labels_every_text_for_every_label_and_is_cached(teacher_config):
    corpus = teacher_config.corpus()
    first = soft_targets(teacher_config, corpus)
    assert not first.from_cache and first.cache.with_suffix(".npy").is_file()
    transfer = [e for e in first.examples if e.source == "transfer"]
    assert first.examples[:len(corpus.train)] == corpus.train and transfer  # training rows, then transfer texts
    assert first.targets.shape == (len(first.examples), len(LABELS)) and not np.isnan(first.targets).any()
    report = first.report
    assert report["kind"] == "e5, top 1 layers fine-tuned" and report["device"] == "cpu"
    assert report["validation_f1_ensemble"]["toxic"] > 0.6  # e5 averaged with the TF-IDF baseline
    assert set(report["held_out_f1_diagnostic"]) >= {"rusentiment_test", "toxic_2ch_pikabu_heldout"}
    assert report["questions_without_marks"] is False
    # the teacher fills the labels a source does not know: sentiment rows get toxicity targets
    toxic = [i for i, e in enumerate(corpus.train) if e.targets.get("toxic") == 1]
    clean = [i for i, e in enumerate(corpus.train) if e.targets.get("toxic") == 0]
    assert first.targets[toxic, 2].mean() > first.targets[clean, 2].mean() + 0.3

    again = soft_targets(teacher_config, corpus)  # the same settings and texts: read from the cache
    assert again.from_cache and again.cache == first.cache and again.report == first.report
    np.testing.assert_array_equal(again.targets, first.targets)
    teacher_config.questions_without_marks = True  # a threshold rule does not change the soft targets
    assert soft_targets(teacher_config, corpus).cache == first.cache
    teacher_config.questions_without_marks = False
    teacher_config.teacher_frozen_layers = 0  # all layers trained (as on a GPU): another teacher, another entry
    every_layer = soft_targets(teacher_config, corpus)
    teacher_config.teacher_frozen_layers = 1
    assert not every_layer.from_cache and every_layer.cache != first.cache
    assert every_layer.report["kind"] == "e5, top 2 layers fine-tuned"


def test_student_distilled_from_the_teacher_learns_the_label(teacher_config, tmp_path):
    summary = train_default(teacher_config, tmp_path / "model")
    assert summary["teacher"]["kind"] == "e5, top 1 layers fine-tuned"
    assert summary["transfer_examples"] > 0 and summary["config"]["teacher"] == "e5"
    assert summary["teacher_targets"]["cache"].startswith(teacher_config.teacher_cache_dir)
    clf = TextClassifier.load(tmp_path / "model")
    toxic = [s["toxic"] for s in clf.predict(every(TOXIC))]
    clean = [s["toxic"] for s in clf.predict(every(CLEAN))]
    assert min(toxic) > max(clean)  # the student learned the label, not a near-tie around 0.5


def test_a_changed_teacher_file_is_a_new_cache_entry(teacher_config):
    from pathlib import Path

    corpus = teacher_config.corpus()
    before = soft_targets(teacher_config, corpus).cache
    path = Path(teacher_config.teacher_model_path)
    path.write_bytes(path.read_bytes())  # same bytes, new modification time
    after = soft_targets(teacher_config, corpus)
    assert after.cache != before and not after.from_cache
