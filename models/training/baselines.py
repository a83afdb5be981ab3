"""Reference baselines scored next to the neural model in ``dozor model eval``.

* TF-IDF (char 2–5-grams within word boundaries + word 1–2-grams) with one logistic regression per
  label, trained on the same training split as the model (only rows where the label is known),
  thresholds chosen on the same validation split, as the model's (``data.threshold_sets``).
* Keyword / "?" rules for questions.
"""

from __future__ import annotations

import re

from models.training.data import LABELS, Example, threshold_sets
from models.training.metrics import thresholds_on_sets

_QUESTION_WORDS = (
    "кто", "что", "чем", "чего", "кому", "кого", "где", "куда", "откуда", "когда", "почему", "зачем",
    "как", "какой", "какая", "какое", "какие", "каким", "какую", "каких", "сколько", "чей", "чья", "чьё", "чьи",
    "ли", "разве", "неужели", "подскажите", "скажите", "расскажите", "объясните", "уточните", "подскажи",
    "скажи", "можно", "будет", "будут", "планируется", "собираетесь", "когда-нибудь",
)
_QUESTION_START = re.compile(r"^\W*(" + "|".join(_QUESTION_WORDS) + r")\b", re.IGNORECASE)
_ASK_PHRASES = re.compile(
    r"\b(подскажите|скажите|объясните|уточните|ответьте|прошу ответить|прошу разъяснить|хотелось бы узнать|интересует|не подскажете|не скажете)\b",
    re.IGNORECASE,
)


def question_rule(text: str) -> int:
    """1 if the text has a "?", starts with a question word, or contains an asking phrase."""
    return int("?" in text or bool(_QUESTION_START.search(text)) or bool(_ASK_PHRASES.search(text)))


class TfidfBaseline:
    """One vectoriser shared by all labels, one logistic regression per label."""

    def __init__(self, labels: tuple[str, ...] = LABELS, seed: int = 13, max_char_features: int = 300_000,
                 max_word_features: int = 150_000):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        self.labels = labels
        self.seed = seed
        self.vectoriser = FeatureUnion([
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=True, sublinear_tf=True,
                                     min_df=2, max_features=max_char_features, dtype=_float32())),
            ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), lowercase=True, sublinear_tf=True,
                                     min_df=2, max_features=max_word_features, token_pattern=r"(?u)\b\w+\b", dtype=_float32())),
        ])
        self.models: dict = {}
        self.thresholds: dict[str, float] = {}

    def fit(self, train: list[Example], validation: list[Example], questions_without_marks: bool | str = False) -> "TfidfBaseline":
        from sklearn.linear_model import LogisticRegression

        x = self.vectoriser.fit_transform([e.text for e in train])
        for label in self.labels:
            rows = [i for i, e in enumerate(train) if label in e.targets]
            if not rows:
                continue
            y = [train[i].targets[label] for i in rows]
            model = LogisticRegression(C=4.0, max_iter=2000, solver="liblinear", random_state=self.seed)
            model.fit(x[rows], y)
            self.models[label] = model
        sets = threshold_sets(validation, list(self.models), questions_without_marks=questions_without_marks)
        self.thresholds, _ = thresholds_on_sets(sets, self.predict_proba)
        return self

    def predict_proba(self, texts: list[str]) -> dict[str, list[float]]:
        x = self.vectoriser.transform(texts)
        return {label: model.predict_proba(x)[:, 1].tolist() for label, model in self.models.items()}


def _float32():
    import numpy as np

    return np.float32
