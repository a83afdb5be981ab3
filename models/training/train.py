"""Train the default classifier from the public datasets, or fine-tune a model on a ЦУР's own CSV.

Both paths write a transformers checkpoint (config, tokenizer, ``model.safetensors``) plus
``dozor.json`` with per-label thresholds chosen on validation data, never on held-out data.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import time
from dataclasses import asdict, replace
from pathlib import Path

from models.training.config import TrainConfig
from models.training.data import LABELS, Example, read_user_csv
from models.training.loop import INFERENCE_MAX_LENGTH, resolve_device, run_training, set_seed, thresholds_for_model
from models.training.model import build_student

log = logging.getLogger(__name__)


def train_default(config: TrainConfig, output_dir: str | Path) -> dict:
    """Build the corpus, train the tokenizer and the model (distilled from the teacher when the config
    names one), add the n-gram part, choose thresholds, save. Returns the training summary."""
    import torch

    torch.set_num_threads(max(1, config.threads))
    set_seed(config.seed)
    device = resolve_device(config.device)
    started = time.monotonic()
    corpus = config.corpus()
    if not corpus.train:
        raise ValueError(f"no training data found under {config.resolved_data_dir()}: pass --data-dir")
    log.info("device %s; corpus: %d training, %d validation texts, %d held-out splits (not used here)",
             device, len(corpus.train), len(corpus.validation), len(corpus.held_out))
    model, tokenizer, navec_share = build_student(config, [e.text for e in corpus.train],
                                                  max(config.max_length, INFERENCE_MAX_LENGTH) + 2)
    train_examples, soft, teacher = list(corpus.train), None, None
    if config.teacher:
        from models.training.distill import soft_targets

        teacher = soft_targets(config, corpus)
        train_examples, soft = teacher.examples, teacher.targets
    thresholds, report, history = run_training(
        model, tokenizer, train_examples, corpus.validation, list(config.labels), config.epochs, config.batch_size,
        config.learning_rate, config.weight_decay, config.warmup_ratio, config.max_length, config.seed,
        config.time_budget_minutes, source_weights=config.source_weights,
        soft_targets=soft, distill_weight=config.distill_weight if config.teacher else 0.0,
        label_weights=config.label_weights, questions_without_marks=config.questions_without_marks, device=device,
    )
    ngram_report = None
    if config.ngram_order > 0:
        model, thresholds, report, ngram_report = with_ngram_part(config, model, tokenizer, corpus, thresholds, report)
    run_as = None
    if config.save_dtype != "float32" or config.inference_quantize != "none":
        # thresholds must fit the model as it is run: weights rounded as stored, quantised as loaded
        from models.classifier import quantize_model

        model.to(getattr(torch, config.save_dtype)).to(torch.float32)
        running = model.eval()
        if config.inference_quantize != "none":
            running = quantize_model(copy.deepcopy(model).eval(), config.inference_quantize)
        trained_thresholds = thresholds
        thresholds, report = thresholds_for_model(running, tokenizer, corpus.validation, list(config.labels),
                                                  config.questions_without_marks)
        run_as = {"save_dtype": config.save_dtype, "quantize": config.inference_quantize,
                  "thresholds_in_training": trained_thresholds}
        log.info("thresholds re-chosen for the model as run (%s weights, quantize %s): %s",
                 config.save_dtype, config.inference_quantize, thresholds)
    summary = {
        "config": asdict(config),
        "train_examples": len(corpus.train),
        "transfer_examples": len(train_examples) - len(corpus.train),
        "validation_examples": len(corpus.validation),
        "navec_initialised_share": navec_share,
        "teacher": teacher.report if teacher else None,
        "teacher_targets": {"cache": str(teacher.cache), "from_cache": teacher.from_cache} if teacher else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "thresholds": thresholds,
        "validation": report,
        "history": history,
        "run_as": run_as,
        "ngrams": ngram_report,
        "minutes": round((time.monotonic() - started) / 60, 1),
    }
    save_checkpoint(model, tokenizer, output_dir, thresholds, extra=summary, dtype=config.save_dtype,
                    quantize=config.inference_quantize)
    return summary


def save_checkpoint(model, tokenizer, output_dir: str | Path, thresholds: dict[str, float], extra: dict | None = None,
                    dtype: str = "float32", quantize: str = "none") -> Path:
    """Write the checkpoint; ``dtype="float16"`` halves the weights on disk (the model in memory is
    float32 again afterwards, with the rounded values). ``quantize="int8"`` records in dozor.json that
    the classifier runs it int8 by default."""
    import torch

    if dtype not in ("float32", "float16"):
        raise ValueError(f"save dtype {dtype!r}: use float32 or float16")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.to(getattr(torch, dtype)).save_pretrained(out, safe_serialization=True)
    model.to(torch.float32)
    tokenizer.save_pretrained(out)
    payload = {"thresholds": {k: float(v) for k, v in thresholds.items()}}
    if quantize != "none":
        payload["quantize"] = quantize
    (out / "dozor.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if extra is not None:
        (out / "training_summary.json").write_text(json.dumps(extra, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def rechoose_thresholds(config: TrainConfig, model_dir: str | Path, write: bool = True) -> dict:
    """Choose a checkpoint's thresholds again on the validation split the config describes.

    The model is scored as the classifier runs it (its dozor.json quantisation, 256 tokens), with
    the config's threshold rule (``questions_without_marks``). With ``write``, dozor.json gets the
    new thresholds (other keys kept). Returns the old and new thresholds and the validation report.
    """
    import torch

    from models.classifier import DOZOR_MODEL_FILE, TextClassifier

    torch.set_num_threads(max(1, config.threads))
    corpus = config.corpus()
    if not corpus.validation:
        raise ValueError(f"no validation data found under {config.resolved_data_dir()}: pass --data-dir")
    classifier = TextClassifier.load(model_dir)
    labels = [classifier.model.config.id2label[i] for i in range(classifier.model.config.num_labels)]
    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        raise ValueError(f"{model_dir} has outputs {unknown} that the validation data does not label; "
                         f"thresholds can be chosen for {', '.join(LABELS)} only")
    thresholds, report = thresholds_for_model(classifier.model, classifier.tokenizer, corpus.validation, labels,
                                              config.questions_without_marks)
    if write:
        path = Path(model_dir) / DOZOR_MODEL_FILE
        stored = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        stored["thresholds"] = {k: float(v) for k, v in thresholds.items()}
        path.write_text(json.dumps(stored, indent=2) + "\n", encoding="utf-8")
    return {"before": {k: classifier.thresholds.get(k) for k in labels}, "thresholds": thresholds,
            "validation": report, "questions_without_marks": config.questions_without_marks,
            "quantize": classifier.quantize}


def with_ngram_part(config: TrainConfig, model, tokenizer, corpus, thresholds: dict[str, float], report: dict):
    """The trained transformer plus the n-gram part (fitted on the training split), with the mix per
    label and the thresholds chosen on the validation split. Returns (model, thresholds, report, n-gram report)."""
    from models.training.ngrams import add_ngram_part

    started = time.monotonic()
    log.info("fitting the %d-gram TF-IDF part on %d texts ...", config.ngram_order, len(corpus.train))
    model, chosen, ngram_report = add_ngram_part(model, tokenizer, corpus.train, corpus.validation, list(config.labels),
                                                 order=config.ngram_order, seed=config.seed,
                                                 questions_without_marks=config.questions_without_marks,
                                                 c=config.ngram_c, skip=config.ngram_skip,
                                                 boundaries=config.ngram_boundaries,
                                                 sentence_labels=[label for label in config.ngram_sentence_labels
                                                                  if label in config.labels])
    thresholds = {label: (chosen.get(label) if chosen.get(label) is not None else thresholds[label]) for label in thresholds}
    report = {**report, **{label: {"f1": entry["f1"]} for label, entry in ngram_report["labels"].items()}}
    ngram_report["seconds"] = round(time.monotonic() - started, 1)
    log.info("n-gram part: %d n-grams, mix (transformer share) %s, thresholds %s",
             ngram_report["features"], ngram_report["mix"], thresholds)
    return model, thresholds, report, ngram_report


def add_ngrams_to_checkpoint(config: TrainConfig, model_dir: str | Path, output_dir: str | Path) -> dict:
    """Give a trained plain-BERT checkpoint the n-gram part (``config.ngram_order``, 3 if 0), fitted on
    the config's training split; mix and thresholds chosen on its validation split; written to ``output_dir``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import models.ngram_model  # noqa: F401  (registers the n-gram architecture with the Auto classes)

    torch.set_num_threads(max(1, config.threads))
    corpus = config.corpus()
    if not corpus.train:
        raise ValueError(f"no training data found under {config.resolved_data_dir()}: pass --data-dir")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=torch.float32)
    if getattr(model.config, "ngram_order", 0):
        raise ValueError(f"{model_dir} already has an n-gram part")
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if list(config.labels) != labels:
        raise ValueError(f"{model_dir} has outputs {labels}, the config says {list(config.labels)}")
    stored_path = Path(model_dir) / "dozor.json"
    stored = json.loads(stored_path.read_text(encoding="utf-8")) if stored_path.is_file() else {}
    config = replace(config, ngram_order=config.ngram_order or 3)
    model, thresholds, report, ngram_report = with_ngram_part(
        config, model, tokenizer, corpus, {label: stored.get("thresholds", {}).get(label, 0.5) for label in labels}, {})
    summary_path = Path(model_dir) / "training_summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    summary.update({"ngrams": ngram_report, "thresholds": thresholds, "ngrams_added_to": str(model_dir)})
    summary.setdefault("config", {}).update(ngram_order=config.ngram_order, ngram_skip=config.ngram_skip,
                                            ngram_boundaries=config.ngram_boundaries, ngram_c=config.ngram_c)
    quantize = stored.get("quantize", "none")
    save_checkpoint(model, tokenizer, output_dir, thresholds, extra=summary, quantize=quantize)
    if quantize != "none":  # the classifier runs it quantised: thresholds must fit that model, as training does
        summary["thresholds"] = rechoose_thresholds(config, output_dir)["thresholds"]
    return summary


def fine_tune(model_dir: str | Path, csv_path: str | Path, output_dir: str | Path, epochs: int = 3,
              learning_rate: float = 2e-4, batch_size: int = 32, validation_share: float = 0.15, seed: int = 13,
              threads: int = 2, time_budget_minutes: float = 30.0, max_length: int = 128) -> dict:
    """Fine-tune an existing checkpoint on a ЦУР's labelled CSV (``text``, ``label``).

    A fixed-seed share of the rows is kept for choosing thresholds; labels with no positive
    row in that share keep the thresholds of the starting model.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import models.ngram_model  # noqa: F401  (registers the n-gram architecture with the Auto classes)

    torch.set_num_threads(max(1, threads))
    set_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=torch.float32)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    examples = read_user_csv(csv_path, labels=tuple(labels))
    if len(examples) < 10:
        raise ValueError(f"{csv_path}: need at least 10 labelled rows, got {len(examples)}")
    rows: list[Example] = list(examples)
    random.Random(seed).shuffle(rows)
    n_val = max(1, int(round(validation_share * len(rows)))) if len(rows) >= 20 else 0
    validation, train = rows[:n_val], rows[n_val:]
    stored = Path(model_dir) / "dozor.json"
    base_thresholds = json.loads(stored.read_text(encoding="utf-8")).get("thresholds", {}) if stored.is_file() else {}
    thresholds, report, history = run_training(
        model, tokenizer, train, validation or train, labels, epochs, batch_size, learning_rate, 0.01, 0.1,
        max_length, seed, time_budget_minutes)
    if validation:
        thresholds = {label: (thresholds[label] if label in report else base_thresholds.get(label, 0.5)) for label in labels}
    else:
        thresholds, report = {label: base_thresholds.get(label, 0.5) for label in labels}, {}
    summary = {"base_model": str(model_dir), "data": str(csv_path), "train_examples": len(train),
               "validation_examples": len(validation), "thresholds": thresholds, "validation": report, "history": history}
    save_checkpoint(model, tokenizer, output_dir, thresholds, extra=summary)
    return summary
