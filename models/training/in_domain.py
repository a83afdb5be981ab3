"""Continue training a checkpoint on citizens' own words: the messages labelled by reading.

`tune_in_domain` starts from a trained checkpoint (the output of `dozor model train`), takes its
transformer, and trains it further on the public training split plus the in-domain training
rows labelled by reading (models/in_domain/train_labels.csv; by default the first training draw,
720 Kursk appeals and 360 VK posts, `draws` picks others), repeated `appeal_repeat` times, with
texts cut at `max_length` tokens (appeals are long). The
public rows also learn the starting model's own outputs (`keep_weight`), so that it does not
forget them. The public validation split plus the
in-domain *validation* half choose the best epoch; then the n-gram part is fitted again on the
whole public training split plus the labelled rows (once each), and its mix and the thresholds
are chosen on the same validation rows, the in-domain ones counted `validation_weight` times. The in-domain
test half is never read here (models/in_domain/evaluate.py reads it for the final figures).

RuSentiment posts drawn into the in-domain set (both halves) are removed from the public
training split first: they come from RuSentiment's training files.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, replace
from pathlib import Path

from models.training.config import TrainConfig
from models.training.data import Corpus, Example
from models.training.loop import INFERENCE_MAX_LENGTH, set_seed

log = logging.getLogger(__name__)


def in_domain_corpus(config: TrainConfig, validation_weight: int = 1, draws: tuple[str, ...] = ("train",),
                     drop_labelled: bool = False) -> tuple[Corpus, list[Example], dict]:
    """(corpus without the drawn texts and with the in-domain validation half appended
    `validation_weight` times, the labelled training rows of the training ``draws``, counts).
    ``drop_labelled`` also removes the public training rows whose text is a labelled training row
    (their weak labels then give way to the ones read)."""
    from models.in_domain.data import LABELS, drawn_keys, half_examples, text_keys, train_examples, without_drawn
    from models.in_domain.select import read_sources

    corpus = config.corpus()
    texts = read_sources(Path(config.resolved_data_dir()))
    keys = drawn_keys(texts)
    train, validation = without_drawn(corpus.train, keys), without_drawn(corpus.validation, keys)
    counts = {"public_train_removed_as_drawn": len(corpus.train) - len(train),
              "public_validation_removed_as_drawn": len(corpus.validation) - len(validation)}
    validation_half = half_examples("validation", texts)
    rows = train_examples(texts, draws=draws)
    if drop_labelled:
        read = without_drawn(train, text_keys(e.text for e in rows))
        counts["public_train_removed_as_labelled"] = len(train) - len(read)
        train = read
    corpus.train, corpus.validation = train, validation + validation_half * max(1, validation_weight)
    counts |= {"in_domain_validation": len(validation_half), "validation_weight": validation_weight,
               "train_rows": len(rows),
               "train_rows_positives": {label: sum(e.targets[label] for e in rows) for label in LABELS}}
    return corpus, rows, counts


def plain_bert(model_dir: str | Path):
    """(BertForSequenceClassification with the checkpoint's transformer weights, tokenizer, labels)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, BertForSequenceClassification

    import models.ngram_model  # noqa: F401  (registers the n-gram architecture with the Auto classes)

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    loaded = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=torch.float32)
    settings = loaded.config.to_dict()
    for key in list(settings):
        if key.startswith("ngram_") or key in ("model_type", "architectures", "auto_map", "transformers_version"):
            settings.pop(key)
    config = BertConfig(**settings)
    config.architectures = ["BertForSequenceClassification"]
    model = BertForSequenceClassification(config)
    state = {k: v for k, v in loaded.state_dict().items() if not k.startswith("ngram_")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"cannot take the transformer out of {model_dir}: missing {missing}, unexpected {unexpected}")
    labels = [config.id2label[i] for i in range(config.num_labels)]
    return model, tokenizer, labels


def tune_in_domain(config: TrainConfig, base_dir: str | Path, output_dir: str | Path, *, epochs: int = 2,
                   public_sample: int | None = None, appeal_repeat: int = 4, learning_rate: float = 3e-4,
                   max_length: int = 128, validation_weight: int = 1, time_budget_minutes: float = 30.0,
                   weak_questions: bool = True, in_domain_labels: tuple[str, ...] = (),
                   public_labels: tuple[str, ...] = (), keep_weight: float = 0.5,
                   draws: tuple[str, ...] = ("train",), drop_labelled: bool = False) -> dict:
    """Train ``base_dir``'s transformer further with the labelled in-domain rows; n-gram part, mix and
    thresholds chosen again; written to ``output_dir``. Returns the summary (also saved).

    The defaults are the shipped model's recipe (model card, "What we tried"): every public
    training row (``public_sample`` None) and the labelled rows 4 times per epoch, 2 epochs at
    3e-4, texts cut at 128 tokens, ``keep_weight`` 0.5.

    ``weak_questions`` False drops the weak "?" question label of the public social-media rows
    in this stage (RuBQ / TREC questions and the labelled in-domain rows keep theirs).
    ``in_domain_labels``: labels whose mix and threshold are chosen on the in-domain validation
    half alone instead of the pooled validation rows; ``public_labels``: on the public validation
    rows alone. ``draws`` and ``drop_labelled``: which training draws of models/in_domain to learn
    from, and whether their texts leave the public rows (``in_domain_corpus``)."""
    import torch
    from transformers import AutoTokenizer

    from models.training.loop import run_training
    from models.training.train import save_checkpoint, with_ngram_part

    torch.set_num_threads(max(1, config.threads))
    set_seed(config.seed)
    started = time.monotonic()
    corpus, rows, counts = in_domain_corpus(config, validation_weight, draws, drop_labelled)
    model, tokenizer, labels = plain_bert(base_dir)
    if labels != list(config.labels):
        raise ValueError(f"{base_dir} has outputs {labels}, the config says {list(config.labels)}")
    rng = random.Random(config.seed)
    public = rng.sample(corpus.train, min(public_sample or len(corpus.train), len(corpus.train)))
    if not weak_questions:
        public = [without_weak_question(e) for e in public]
    train = public + rows * appeal_repeat
    rng.shuffle(train)
    log.info("in-domain tuning: %d public + %d labelled rows x %d; validation %d rows (%d in-domain x %d)",
             len(public), len(rows), appeal_repeat, len(corpus.validation), counts["in_domain_validation"],
             validation_weight)
    soft = None
    if keep_weight > 0:
        soft = starting_probabilities(model, tokenizer, train, labels, max_length)
    thresholds, report, history = run_training(
        model, tokenizer, train, corpus.validation, labels, epochs, config.batch_size, learning_rate,
        config.weight_decay, config.warmup_ratio, max_length, config.seed, time_budget_minutes,
        soft_targets=soft, distill_weight=keep_weight, questions_without_marks=config.questions_without_marks)
    # The n-gram part sees each labelled row once: repeated rows would pass every one of their
    # n-grams through the table's document-frequency cut (min_df 2) and grow the table by ~20 %.
    ngram_train = Corpus(train=corpus.train + rows, validation=corpus.validation)
    if not weak_questions:
        ngram_train.train = [without_weak_question(e) for e in ngram_train.train]
    model, thresholds, report, ngram_report = with_ngram_part(config, model, tokenizer, ngram_train, thresholds, report)
    from models.in_domain.data import SOURCE_VALIDATION

    for chosen, keep, where in ((in_domain_labels, True, "in-domain validation half"),
                                (public_labels, False, "public validation rows")):
        if chosen:
            rows = [e for e in corpus.validation if (e.source == SOURCE_VALIDATION) == keep]
            thresholds, ngram_report = choose_again(model, tokenizer, rows, labels, chosen, thresholds, ngram_report,
                                                    config.questions_without_marks, where)
    base_stored = Path(base_dir) / "dozor.json"
    quantize = json.loads(base_stored.read_text(encoding="utf-8")).get("quantize", "none") if base_stored.is_file() else "none"
    summary = {
        "base_model": str(base_dir),
        "config": asdict(replace(config)),
        "in_domain": {**counts, "public_sample": len(public), "appeal_repeat": appeal_repeat,
                      "learning_rate": learning_rate, "max_length": max_length, "epochs": epochs,
                      "weak_questions": weak_questions, "in_domain_labels": list(in_domain_labels),
                      "public_labels": list(public_labels), "keep_weight": keep_weight,
                      "draws": list(draws), "drop_labelled": drop_labelled},
        "thresholds": thresholds, "validation": report, "history": history, "ngrams": ngram_report,
        "minutes": round((time.monotonic() - started) / 60, 1),
        "inference_max_length": INFERENCE_MAX_LENGTH,
    }
    # the starting tokenizer as it was loaded: training calls leave truncation / padding state in it
    save_checkpoint(model, AutoTokenizer.from_pretrained(str(base_dir)), output_dir, thresholds, extra=summary,
                    quantize=quantize)
    return summary


def starting_probabilities(model, tokenizer, rows: list[Example], labels: list[str], max_length: int):
    """[rows, labels] sigmoid outputs of ``model`` as it is now for the public rows, NaN for the
    labelled in-domain rows (they learn from their labels only)."""
    import numpy as np

    from models.in_domain.data import SOURCE_TRAIN
    from models.training.loop import score_texts

    public = [i for i, e in enumerate(rows) if e.source != SOURCE_TRAIN]
    unique = list(dict.fromkeys(rows[i].text for i in public))
    log.info("scoring %d public texts with the starting model (targets that keep it) ...", len(unique))
    scores = score_texts(model, tokenizer, unique, labels, max_length)
    index = {t: k for k, t in enumerate(unique)}
    out = np.full((len(rows), len(labels)), np.nan, dtype=np.float32)
    for i in public:
        out[i] = [scores[label][index[rows[i].text]] for label in labels]
    return out


def without_weak_question(example: Example) -> Example:
    """The example without its weak "?" question label (social-media sources); others unchanged."""
    from models.in_domain.data import SOURCE_TRAIN, SOURCE_VALIDATION
    from models.training.data import QUESTION_AID_SOURCE

    if example.source in (QUESTION_AID_SOURCE, SOURCE_TRAIN, SOURCE_VALIDATION) or "question" not in example.targets:
        return example
    return Example(example.text, {k: v for k, v in example.targets.items() if k != "question"}, example.source)


def choose_again(model, tokenizer, rows: list[Example], labels: list[str], chosen: tuple[str, ...],
                 thresholds: dict[str, float], ngram_report: dict, questions_without_marks, where: str):
    """Mix and threshold of the ``chosen`` labels again, on ``rows`` alone (``where`` names them)."""
    from models.training.ngrams import choose_mix

    fitted = [label for label in labels if label in chosen]
    mix, chosen_thresholds, report = choose_mix(model, tokenizer, rows, labels, fitted, questions_without_marks)
    current = [float(m) for m in model.ngram_mix.tolist()]
    for j, label in enumerate(labels):
        if label in fitted and chosen_thresholds.get(label) is not None:
            current[j] = mix[j]
            thresholds = {**thresholds, label: chosen_thresholds[label]}
            ngram_report["mix"][label] = mix[j]
            ngram_report["labels"][label] = {**report[label], "chosen_on": where}
    model.set_mix(current)
    log.info("chosen on the %s: mix %s, thresholds %s", where,
             {label: ngram_report["mix"][label] for label in fitted}, {label: thresholds[label] for label in fitted})
    return thresholds, ngram_report
