"""Themes of citizen appeals: the reviewed category → theme table and a TF-IDF reference.

    python -m models.in_domain.topics            # per-theme F1 of TF-IDF on the held-out appeals

`topics.yaml` maps each of the 171 categories of ../shared/data/kursk_appeals to one of 16
themes. The appeals drawn into the in-domain set (draw.csv) are left out; the rest are split
once, seeded and stratified by theme, into 80 % training and 20 % held-out. A topic model for
Dozor must beat the TF-IDF figures this prints, on the same held-out part.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections import defaultdict
from pathlib import Path

import yaml

from models.in_domain.select import DATA, HERE, appeal_text, read_draw

SEED = 20261206
HELD_OUT_SHARE = 0.2


def read_topics(path: Path = HERE / "topics.yaml") -> tuple[dict[str, str], dict[str, str]]:
    """(theme key → Russian name, category → theme key)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    themes, categories = data["themes"], data["categories"]
    unknown = {t for t in categories.values() if t not in themes}
    if unknown:
        raise ValueError(f"topics.yaml: categories map to unknown themes {sorted(unknown)}")
    return themes, categories


def appeal_splits(data: Path = DATA) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, held_out): lists of (text, theme) of the appeals not in the in-domain draw."""
    train, held_out = appeal_splits_with_ids(data)
    return [(t, y) for _, t, y in train], [(t, y) for _, t, y in held_out]


def appeal_splits_with_ids(data: Path = DATA) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(train, held_out): lists of (id, text, theme), the split of `appeal_splits`."""
    _, categories = read_topics()
    drawn = {i for i, _ in read_draw()}
    csv.field_size_limit(10**9)
    by_theme: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    with open(data / "kursk_appeals" / "appeals.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if f"kursk:{row['id']}" in drawn:
                continue
            if row["category"] not in categories:
                raise ValueError(f"category not in topics.yaml: {row['category']!r}")
            theme = categories[row["category"]]
            by_theme[theme].append((f"kursk:{row['id']}", appeal_text(row["text_html"]), theme))
    rng = random.Random(SEED)
    train, held_out = [], []
    for theme in sorted(by_theme):
        rows = by_theme[theme]
        rng.shuffle(rows)
        cut = round(len(rows) * HELD_OUT_SHARE)
        held_out += rows[:cut]
        train += rows[cut:]
    return train, held_out


def tfidf_report(train: list[tuple[str, str]], held_out: list[tuple[str, str]]) -> dict:
    """Per-theme precision / recall / F1 and macro-F1 of TF-IDF + logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import classification_report
    from sklearn.pipeline import FeatureUnion, make_pipeline

    features = FeatureUnion([
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                 min_df=2)),
        ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)),
    ])
    model = make_pipeline(features, LogisticRegression(C=10.0, max_iter=3000,
                                                       class_weight="balanced"))
    model.fit([t for t, _ in train], [y for _, y in train])
    predicted = model.predict([t for t, _ in held_out])
    return classification_report([y for _, y in held_out], predicted, output_dict=True,
                                 zero_division=0)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    themes, _ = read_topics()
    train, held_out = appeal_splits()
    report = tfidf_report(train, held_out)
    print(f"TF-IDF on {len(train)} training appeals, {len(held_out)} held out")
    print("| theme | held out | precision | recall | F1 |\n|---|---|---|---|---|")
    for key, name in themes.items():
        if key in report:
            r = report[key]
            print(f"| {name} | {int(r['support'])} | {r['precision']:.3f} | {r['recall']:.3f} | "
                  f"{r['f1-score']:.3f} |")
    print(f"| **macro** | {len(held_out)} | | | **{report['macro avg']['f1-score']:.3f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
