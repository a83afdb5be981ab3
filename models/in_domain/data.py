"""The in-domain messages as training and validation examples (models/training's `Example`).

* `train_examples()`: the training draws (train_draw.csv), labelled by reading in
  train_labels.csv — appeals and VK posts, none in draw.csv or in the topic held-out part.
* `half_examples("validation")`: the validation half of the labelled set (draw.csv,
  labels.csv). The test half is read by evaluate.py only, never here.
* `drawn_keys()`: the normalised texts of every drawn message (both halves), which a training
  corpus must not contain: the 200 RuSentiment posts of the set come from RuSentiment's
  training files.

Each example knows `question`, `negative`, `toxic`; `positive` is not labelled (masked).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from models.in_domain.select import DATA, DRAW, HERE, TRAIN_DRAW, read_draw, read_sources
from models.training.data import Example, normalise_key, strip_question_marks

LABELS = ("question", "negative", "toxic")
TRAIN_LABELS = HERE / "train_labels.csv"
SOURCE_TRAIN = "in_domain_train"  # Example.source of the labelled training rows
SOURCE_VALIDATION = "in_domain"  # Example.source of the validation half


def read_labels(path: Path = HERE / "labels.csv") -> dict[str, dict[str, int]]:
    """Labels by id of labels.csv (the evaluation set) or of another labels file."""
    with open(path, encoding="utf-8", newline="") as f:
        return {r["id"]: {label: int(r[label]) for label in LABELS} for r in csv.DictReader(f)}


def _examples(ids: list[str], labels: dict[str, dict[str, int]], texts: dict[str, str], source: str,
              what: str) -> list[Example]:
    missing = [i for i in ids if i not in labels]
    if missing:
        raise ValueError(f"{what}: {len(missing)} drawn ids have no labels (first {missing[0]})")
    return [Example(texts[i], dict(labels[i]), source) for i in ids if texts.get(i, "").strip()]


#: The training draws of train_draw.csv (training_draw.py): the first, and the second of 2026-12-07.
TRAIN_DRAWS = ("train", "train2")


def train_examples(texts: dict[str, str] | None = None, data_dir: Path = DATA,
                   draws: tuple[str, ...] = ("train",)) -> list[Example]:
    """The labelled training rows of the training ``draws``, in draw order (default: the first
    draw, the one the shipped model was tuned with)."""
    unknown = sorted(set(draws) - set(TRAIN_DRAWS))
    if unknown or not draws:
        raise ValueError(f"training draws {unknown or '(none)'}: choose from {', '.join(TRAIN_DRAWS)}")
    texts = texts if texts is not None else read_sources(data_dir)
    ids = [i for i, d in read_draw(TRAIN_DRAW) if d in draws]
    return _examples(ids, read_labels(TRAIN_LABELS), texts, SOURCE_TRAIN, TRAIN_LABELS.name)


def half_examples(half: str, texts: dict[str, str] | None = None, data_dir: Path = DATA) -> list[Example]:
    """One half of the labelled evaluation set; only "validation" may feed a choice."""
    if half not in ("validation", "test"):
        raise ValueError(f"half must be validation or test, not {half!r}")
    texts = texts if texts is not None else read_sources(data_dir)
    ids = [i for i, h in read_draw(DRAW) if h == half]
    return _examples(ids, read_labels(), texts, SOURCE_VALIDATION, "labels.csv")


def text_keys(texts: Iterable[str]) -> set[str]:
    """Normalised ``texts``, as written and without "?" (what `without_drawn` matches)."""
    return {key for text in texts for key in (normalise_key(text), normalise_key(strip_question_marks(text)))}


def drawn_keys(texts: dict[str, str] | None = None, data_dir: Path = DATA) -> set[str]:
    """Normalised texts (as written and without "?") of every message in draw.csv."""
    texts = texts if texts is not None else read_sources(data_dir)
    return text_keys(texts[i] for i, _ in read_draw(DRAW))


def without_drawn(examples: list[Example], keys: set[str]) -> list[Example]:
    """`examples` less those whose text (as written or without "?") is a drawn message."""
    return [e for e in examples
            if normalise_key(e.text) not in keys and normalise_key(strip_question_marks(e.text)) not in keys]
