"""Score a checkpoint and the TF-IDF baseline on the in-domain set labelled by reading.

    python -m models.in_domain.evaluate --model models/default --half validation
    python -m models.in_domain.evaluate --model models/default --half test --report r.json

Per half (validation / test, fixed in draw.csv), per group of sources (the Kursk appeals,
the RuSentiment posts, both) and per label: precision, recall and F1 at the checkpoint's own
thresholds with 95 % bootstrap intervals, ROC AUC, the same for TF-IDF trained on the model's
training data (models/training/baselines.py, thresholds from the same validation rows; for a
model tuned on the in-domain training rows, TF-IDF gets those rows too: `tfidf_baseline`), and
a paired bootstrap interval of F1(model) - F1(TF-IDF).

The test half is for final figures: read it once a model is chosen, never to choose one.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from models.in_domain.data import LABELS, read_labels
from models.in_domain.select import DATA, read_draw, read_sources
from models.training.evaluate import paired_bootstrap_f1_diff
from models.training.metrics import precision_recall_f1, roc_auc

log = logging.getLogger(__name__)
GROUPS = {"kursk": ("kursk:",), "rusentiment": ("rusentiment:",), "all": ("kursk:", "rusentiment:")}


def bootstrap_interval(gold: list[int], predicted: list[int], metric: str, resamples: int = 2000,
                       seed: int = 13) -> list[float]:
    """95 % percentile interval of precision, recall or F1 over resamples of the items."""
    import numpy as np

    gold_a, pred_a = np.asarray(gold, int), np.asarray(predicted, int)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        i = rng.integers(0, len(gold_a), len(gold_a))
        values.append(precision_recall_f1(gold_a[i].tolist(), pred_a[i].tolist())[metric])
    low, high = np.percentile(values, [2.5, 97.5])
    return [round(float(low), 3), round(float(high), 3)]


def score(gold: list[int], scores: list[float], threshold: float) -> dict:
    predicted = [int(s >= threshold) for s in scores]
    m = precision_recall_f1(gold, predicted)
    auc = roc_auc(gold, scores)
    return {
        "precision": round(m["precision"], 3), "recall": round(m["recall"], 3),
        "f1": round(m["f1"], 3), "support": m["support"], "n": m["n"],
        "f1_ci": bootstrap_interval(gold, predicted, "f1"),
        "recall_ci": bootstrap_interval(gold, predicted, "recall"),
        "roc_auc": round(auc, 3) if auc is not None else None,
        "threshold": threshold, "predicted": predicted,
    }


def evaluate(model_dir: str | Path, half: str, baseline: bool = True,
             data_dir: Path = DATA, seed: int = 13) -> dict:
    """The report for one half ("validation" or "test") as plain data."""
    from models.classifier import TextClassifier

    if half not in ("validation", "test"):
        raise ValueError(f"half must be validation or test, not {half!r}")
    texts = read_sources(data_dir)
    labels = read_labels()
    ids = [i for i, h in read_draw() if h == half and i in labels]
    if len(ids) != sum(1 for _, h in read_draw() if h == half):
        raise ValueError("labels.csv does not label every drawn id of this half")
    classifier = TextClassifier.load(model_dir)
    predictions = classifier.predict([texts[i] for i in ids])
    base = None
    if baseline:
        tfidf = tfidf_baseline(model_dir, data_dir, seed)
        base = (tfidf.predict_proba([texts[i] for i in ids]), tfidf.thresholds)
    report: dict = {"model": str(model_dir), "half": half, "n": len(ids), "groups": {}}
    for group, prefixes in GROUPS.items():
        rows = [k for k, i in enumerate(ids) if i.startswith(prefixes)]
        entry: dict = {}
        for label in LABELS:
            gold = [labels[ids[k]][label] for k in rows]
            if not any(gold):
                continue
            model = score(gold, [predictions[k].get(label, 0.0) for k in rows],
                          classifier.thresholds.get(label, 0.5))
            entry[label] = {"model": model}
            if base is not None and label in base[1]:
                tfidf_scores, thresholds = base
                tf = score(gold, [tfidf_scores[label][k] for k in rows], thresholds[label])
                entry[label]["tfidf"] = tf
                entry[label]["f1_diff_ci"] = paired_bootstrap_f1_diff(
                    gold, model["predicted"], tf["predicted"], seed=seed)
        report["groups"][group] = entry
    for entry in report["groups"].values():
        for result in entry.values():
            for key in ("model", "tfidf"):
                result.get(key, {}).pop("predicted", None)
    return report


def tfidf_baseline(model_dir: str | Path, data_dir: Path = DATA, seed: int = 13):
    """TF-IDF + logistic regression trained on the data the checkpoint was trained on.

    A checkpoint from `dozor model tune-in-domain` (its training_summary.json has `in_domain`):
    the public training split less the drawn texts plus the labelled in-domain training rows of
    the same training draws, repeated as the model had them; thresholds from the same validation
    rows, with the labels the model chose on the in-domain validation half chosen there too. Any other checkpoint: the
    public training and validation splits.
    """
    from models.training.baselines import TfidfBaseline
    from models.training.config import TrainConfig
    from models.training.metrics import thresholds_on_sets

    summary_path = Path(model_dir) / "training_summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.is_file() else {}
    tuned = summary.get("in_domain")
    config = TrainConfig(data_dir=str(data_dir), seed=seed)
    if tuned:
        from models.in_domain.data import SOURCE_VALIDATION
        from models.training.data import threshold_sets
        from models.training.in_domain import in_domain_corpus, without_weak_question

        corpus, rows, _ = in_domain_corpus(config, tuned.get("validation_weight", 1),
                                           tuple(tuned.get("draws", ["train"])), tuned.get("drop_labelled", False))
        train = corpus.train + rows * tuned.get("appeal_repeat", 1)
        if not tuned.get("weak_questions", True):
            train = [without_weak_question(e) for e in train]
        log.info("training the TF-IDF baseline on %d texts (as the model: public + in-domain rows)", len(train))
        tfidf = TfidfBaseline(seed=seed).fit(train, corpus.validation)
        chosen = [label for label in tuned.get("in_domain_labels", []) if label in tfidf.models]
        if chosen:
            in_domain = [e for e in corpus.validation if e.source == SOURCE_VALIDATION]
            thresholds, _ = thresholds_on_sets(threshold_sets(in_domain, chosen), tfidf.predict_proba)
            tfidf.thresholds.update({label: thresholds[label] for label in chosen if label in thresholds})
        return tfidf
    from models.training.data import build_corpus

    corpus = build_corpus(data_dir, seed=seed, question_mark_strip_share=config.question_mark_strip_share)
    log.info("training the TF-IDF baseline on %d texts", len(corpus.train))
    return TfidfBaseline(seed=seed).fit(corpus.train, corpus.validation)


def render(report: dict) -> str:
    lines = [f"In-domain {report['half']} half ({report['n']} messages), model {report['model']}",
             "", "| group | label | pos/n | model P / R / F1 [F1 95 % CI] | AUC | TF-IDF P / R / F1 |"
             " F1 diff 95 % CI |", "|---|---|---|---|---|---|---|"]
    for group, entry in report["groups"].items():
        for label, r in entry.items():
            m, t = r["model"], r.get("tfidf")
            tf = f"{t['precision']:.3f} / {t['recall']:.3f} / {t['f1']:.3f}" if t else "–"
            diff = r.get("f1_diff_ci")
            lines.append(
                f"| {group} | {label} | {m['support']}/{m['n']} | {m['precision']:.3f} / "
                f"{m['recall']:.3f} / {m['f1']:.3f} [{m['f1_ci'][0]:.3f}, {m['f1_ci'][1]:.3f}] | "
                f"{m['roc_auc']} | {tf} | {diff if diff else '–'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/default", help="checkpoint directory")
    parser.add_argument("--half", choices=("validation", "test"), default="validation")
    parser.add_argument("--no-baseline", action="store_true", help="skip TF-IDF (a minute)")
    parser.add_argument("--report", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        report = evaluate(args.model, args.half, baseline=not args.no_baseline)
    except (ValueError, FileNotFoundError) as exc:
        print(f"in-domain evaluation: {exc}", file=sys.stderr)
        return 2
    print(render(report))
    if args.report:
        args.report.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
