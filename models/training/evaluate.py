"""Score a model on every held-out split, next to the TF-IDF and question-rule baselines.

Held-out splits come from ``data.build_corpus`` with the same seed as training, so none of
them was used for training or for choosing thresholds. The baselines are trained on the same
training split and get their thresholds from the same validation split as the model.
Writes ``report.md`` and ``report.json`` into the report directory.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from models.training.data import QUESTION_RULES, build_corpus
from models.training.metrics import (
    best_threshold,
    macro_f1,
    precision_recall_f1,
    roc_auc,
    three_class,
)

log = logging.getLogger(__name__)

# Splits whose negative-class F1 must beat TF-IDF by this many points (issue #3).
MARGIN_SPLITS = {"rusentiment_test": 0.03, "sentirueval2015_test": 0.03}


def _score_split(split, scores: dict[str, list[float]], thresholds: dict[str, float]) -> dict:
    label = split.label
    result = precision_recall_f1(split.gold, [int(s >= thresholds[label]) for s in scores[label]])
    # Diagnosis only, never a result: how well the scores rank the split, and the F1 a threshold
    # chosen on the split itself would give (tells a ranking gap from a threshold gap).
    result["roc_auc"] = roc_auc(split.gold, scores[label])
    if any(split.gold):
        oracle = best_threshold(split.gold, scores[label])
        result["oracle_threshold"] = oracle
        result["oracle_f1"] = precision_recall_f1(split.gold, [int(s >= oracle) for s in scores[label]])["f1"]
    if split.gold_3class and "negative" in scores and "positive" in scores:
        predicted = [three_class(n, p, thresholds["negative"], thresholds["positive"])
                     for n, p in zip(scores["negative"], scores["positive"])]
        result["macro_f1_3class"] = macro_f1(split.gold_3class, predicted)
    return result


SHARED_GRID = tuple(round(i / 100, 2) for i in range(1, 100))


def shared_threshold_wins(splits: list[tuple[list[int], list[float]]], baseline_f1: list[float],
                          margins: list[float], grid: tuple[float, ...] = SHARED_GRID) -> list[float]:
    """Thresholds (from ``grid``) at which the model beats the baseline on *every* split of one label at once.

    ``splits`` holds (gold, model scores) per split; ``baseline_f1`` the baseline's F1 on each at its own
    validation threshold, ``margins`` the lead each split requires. Diagnosis only: it tells a model whose
    one threshold cannot serve all splits of a label (a ranking limit) from one whose validation split
    put the threshold outside a window that exists (an operating-point problem). Never used to set a
    threshold: that would be choosing it on held-out data.
    """
    wins = []
    for t in grid:
        f1s = [precision_recall_f1(gold, [int(x >= t) for x in scores])["f1"] for gold, scores in splits]
        if all(f >= b + m and f > b for f, b, m in zip(f1s, baseline_f1, margins)):
            wins.append(t)
    return wins


def paired_bootstrap_f1_diff(gold: list[int], model: list[int], baseline: list[int], resamples: int = 2000,
                             seed: int = 13, level: float = 0.95) -> list[float]:
    """Percentile interval of F1(model) - F1(baseline) over bootstrap resamples of the split's items.

    Paired: each resample draws the same items for both, so the interval reflects how much the
    *difference* depends on which texts happened to land in the split. Every item falls into one of
    eight (gold, model, baseline) cells, so a resample of n items is a multinomial draw of eight
    counts. Diagnosis only: the acceptance compares the F1 values themselves.
    """
    import numpy as np

    cells = np.bincount(np.asarray(gold, int) * 4 + np.asarray(model, int) * 2 + np.asarray(baseline, int),
                        minlength=8)
    n = int(cells.sum())
    if not n:
        return [0.0, 0.0]
    counts = np.random.default_rng(seed).multinomial(n, cells / n, size=resamples)

    def f1(tp, fp, fn):
        denominator = 2 * tp + fp + fn
        return np.divide(2 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)

    c = counts.T  # cell index = 4 * gold + 2 * model + baseline
    diff = f1(c[6] + c[7], c[2] + c[3], c[4] + c[5]) - f1(c[5] + c[7], c[1] + c[3], c[4] + c[6])
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diff, [tail, 100 - tail])
    return [round(float(low), 4), round(float(high), 4)]


def f1_interval(gold: list[int], predicted: list[int], resamples: int = 2000, seed: int = 13,
                level: float = 0.95) -> list[float]:
    """Percentile bootstrap interval of one model's F1 on a split (resamples of its items)."""
    import numpy as np

    cells = np.bincount(np.asarray(gold, int) * 2 + np.asarray(predicted, int), minlength=4)
    n = int(cells.sum())
    if not n:
        return [0.0, 0.0]
    c = np.random.default_rng(seed).multinomial(n, cells / n, size=resamples).T  # 2 * gold + predicted
    denominator = 2 * c[3] + c[1] + c[2]
    f1 = np.divide(2 * c[3], denominator, out=np.zeros(resamples), where=denominator > 0)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(f1, [tail, 100 - tail])
    return [round(float(low), 4), round(float(high), 4)]


def _ranges(values: list[float], step: float = 0.01) -> list[list[float]]:
    """[0.23, 0.24, 0.25, 0.4] -> [[0.23, 0.25], [0.4, 0.4]]"""
    out: list[list[float]] = []
    for v in values:
        if out and abs(v - out[-1][1] - step) < step / 2:
            out[-1][1] = v
        else:
            out.append([v, v])
    return out


def evaluate(model_dir: str | Path, report_dir: str | Path, data_dir: str | Path, seed: int = 13,
             baselines: bool = True, max_rows_per_source: int | None = None, threads: int = 2,
             question_mark_strip_share: float = 0.5, questions_without_marks: bool | str = False,
             against: str | Path | None = None) -> dict:
    """Score ``model_dir`` and (unless ``baselines`` is false) the baselines; write the reports.

    With ``against`` (another checkpoint, e.g. the shipped one) each split also gets that model's
    F1 at its own thresholds and the paired bootstrap interval of F1(model) - F1(against): whether
    a candidate is worse than what it replaces, beyond the noise of the split.

    ``seed`` and ``question_mark_strip_share`` must be the model's training values, so that the
    baselines see the same training data and no held-out row was trained on.
    """
    import torch

    from models.classifier import TextClassifier

    torch.set_num_threads(max(1, threads))
    started = time.monotonic()
    corpus = build_corpus(data_dir, seed=seed, max_rows_per_source=max_rows_per_source,
                          question_mark_strip_share=question_mark_strip_share)
    if not corpus.held_out:
        raise ValueError(f"no held-out splits could be built from {data_dir}")
    classifier = TextClassifier.load(model_dir)
    log.info("model %s: thresholds %s", model_dir, classifier.thresholds)
    other = TextClassifier.load(against) if against is not None else None

    tfidf = None
    if baselines:
        from models.training.baselines import TfidfBaseline

        log.info("training the TF-IDF baseline on %d texts ...", len(corpus.train))
        tfidf = TfidfBaseline(seed=seed).fit(corpus.train, corpus.validation, questions_without_marks=questions_without_marks)

    splits, label_scores = [], {}
    for split in corpus.held_out:
        t0 = time.monotonic()
        predictions = classifier.predict(split.texts)
        scores = {label: [p.get(label, 0.0) for p in predictions] for label in classifier.labels}
        entry = {
            "name": split.name, "description": split.description, "label": split.label, "n": len(split.texts),
            "positives": sum(split.gold), "model": _score_split(split, scores, classifier.thresholds),
            "model_seconds": round(time.monotonic() - t0, 2),
        }
        if other is not None:
            label = split.label
            theirs = [p.get(label, 0.0) for p in other.predict(split.texts)]
            mine_predicted = [int(x >= classifier.thresholds[label]) for x in scores[label]]
            theirs_predicted = [int(x >= other.thresholds[label]) for x in theirs]
            entry["against"] = {
                "model": str(against), "f1": precision_recall_f1(split.gold, theirs_predicted)["f1"],
                "f1_ci95": f1_interval(split.gold, theirs_predicted),
                "f1_diff_ci95": paired_bootstrap_f1_diff(split.gold, mine_predicted, theirs_predicted)}
        if tfidf is not None:
            base_scores = tfidf.predict_proba(split.texts)
            entry["tfidf"] = _score_split(split, base_scores, tfidf.thresholds)
            label = split.label
            entry["f1_diff_ci95"] = paired_bootstrap_f1_diff(
                split.gold, [int(x >= classifier.thresholds[label]) for x in scores[label]],
                [int(x >= tfidf.thresholds[label]) for x in base_scores[label]])
            if split.label == "question":
                from models.training.baselines import question_rule

                entry["question_rule"] = precision_recall_f1(split.gold, [question_rule(t) for t in split.texts])
            margin = MARGIN_SPLITS.get(split.name, 0.0)
            entry["required_margin"] = margin
            entry["beats_tfidf"] = entry["model"]["f1"] >= entry["tfidf"]["f1"] + margin and entry["model"]["f1"] > entry["tfidf"]["f1"]
        splits.append(entry)
        label_scores.setdefault(split.label, []).append((split.gold, scores[split.label]))
        log.info("%s: model F1 %.3f%s", split.name, entry["model"]["f1"],
                 f", TF-IDF F1 {entry['tfidf']['f1']:.3f}" if tfidf is not None else "")

    report = {
        "model": str(model_dir), "data_dir": str(data_dir), "seed": seed,
        "thresholds": classifier.thresholds,
        "question_threshold_rule": QUESTION_RULES[questions_without_marks],
        "tfidf_thresholds": tfidf.thresholds if tfidf is not None else None,
        "splits": splits, "seconds": round(time.monotonic() - started, 1),
    }
    if tfidf is not None:
        report["all_beat_tfidf"] = all(s["beats_tfidf"] for s in splits)
        shared = {}
        for label, pairs in label_scores.items():
            if len(pairs) < 2:
                continue
            mine = [s for s in splits if s["label"] == label]
            wins = shared_threshold_wins(pairs, [s["tfidf"]["f1"] for s in mine], [s["required_margin"] for s in mine])
            shared[label] = {"splits": [s["name"] for s in mine], "model_threshold": classifier.thresholds[label],
                             "winning_thresholds": _ranges(wins)}
        report["shared_threshold"] = shared
    if other is not None:
        report["against"] = str(against)
        report["not_worse_than_against"] = all(s["against"]["f1_diff_ci95"][1] >= 0 for s in splits)
        report["within_against_f1_interval"] = all(s["model"]["f1"] >= s["against"]["f1_ci95"][0] for s in splits)
        other.close()
    classifier.close()
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report


def _fmt(m: dict | None) -> str:
    if not m:
        return "—"
    return f"{m['precision']:.3f} / {m['recall']:.3f} / **{m['f1']:.3f}**"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def _oracle(m: dict) -> str:
    if m.get("oracle_f1") is None:
        return "—"
    return f"{m['oracle_f1']:.3f} (at {m['oracle_threshold']:.2f})"


def render_markdown(report: dict) -> str:
    lines = [
        f"# Classifier evaluation: `{report['model']}`", "",
        f"Data: `{report['data_dir']}`, split seed {report['seed']}. Every split below is held out: "
        "used neither for training nor for choosing thresholds. Cells: precision / recall / **F1** of the split's label.", "",
        f"Model thresholds: `{json.dumps(report['thresholds'])}`",
    ]
    if report.get("tfidf_thresholds"):
        lines.append(f"TF-IDF thresholds (chosen on the same validation data): `{json.dumps(report['tfidf_thresholds'])}`")
    if report.get("question_threshold_rule"):
        lines.append(f"The baseline's question threshold is chosen on {report['question_threshold_rule']} "
                     "(the config's `questions_without_marks`); the model's was chosen by its training config.")
    lines += ["", "| split | label | n (pos) | model P / R / F1 | TF-IDF + LR P / R / F1 | question rules P / R / F1 | beats TF-IDF | "
              "model − TF-IDF F1, 95% bootstrap interval |",
              "|---|---|---|---|---|---|---|---|"]
    for s in report["splits"]:
        margin = s.get("required_margin", 0.0)
        verdict = "—" if "beats_tfidf" not in s else ("yes" if s["beats_tfidf"] else "**no**")
        if margin and "beats_tfidf" in s:
            verdict += f" (needs +{100 * margin:.0f} pts: {100 * (s['model']['f1'] - s['tfidf']['f1']):+.1f})"
        interval = s.get("f1_diff_ci95")
        interval = "—" if not interval else f"{100 * interval[0]:+.1f} to {100 * interval[1]:+.1f} pts"
        lines.append(f"| {s['name']} | {s['label']} | {s['n']} ({s['positives']}) | {_fmt(s['model'])} | "
                     f"{_fmt(s.get('tfidf'))} | {_fmt(s.get('question_rule'))} | {verdict} | {interval} |")
    if report.get("against"):
        lines += ["", f"Against `{report['against']}` (its own thresholds; 2,000 bootstrap resamples of each split): "
                  "model F1 at or above the low end of its F1 interval everywhere = "
                  f"{'yes' if report['within_against_f1_interval'] else '**no**'}; paired difference never "
                  f"below zero = {'yes' if report['not_worse_than_against'] else '**no**'}", "",
                  "| split | model F1 | its F1 [95% interval] | paired difference F1(model) − F1(it), 95% interval |",
                  "|---|---|---|---|"]
        for s in report["splits"]:
            a = s["against"]
            low, high = a["f1_diff_ci95"]
            mark = "" if high >= 0 else " (**worse**)"
            lines.append(f"| {s['name']} | {s['model']['f1']:.3f} | {a['f1']:.3f} [{a['f1_ci95'][0]:.3f}, "
                         f"{a['f1_ci95'][1]:.3f}] | {100 * low:+.1f} to {100 * high:+.1f} pts{mark} |")
    three = [s for s in report["splits"] if "macro_f1_3class" in s["model"]]
    if three:
        lines += ["", "3-class sentiment (negative / neutral / positive; 'speech' → positive, 'skip' dropped; "
                  "neutral = neither label above its threshold, else the label with the larger margin over its threshold):", "",
                  "| split | model macro-F1 | TF-IDF macro-F1 |", "|---|---|---|"]
        for s in three:
            base = s.get("tfidf", {}).get("macro_f1_3class")
            lines.append(f"| {s['name']} | {s['model']['macro_f1_3class']:.3f} | {'—' if base is None else f'{base:.3f}'} |")
    lines += ["", "Ranking, for diagnosis only (not results: the second figure uses a threshold chosen on the "
              "split itself). ROC AUC is threshold-free; a model that ranks a split better but scores a lower F1 "
              "there has a threshold problem, not a ranking one.", "",
              "| split | model ROC AUC | TF-IDF ROC AUC | model F1 at its best threshold | TF-IDF F1 at its best threshold |",
              "|---|---|---|---|---|"]
    for s in report["splits"]:
        base = s.get("tfidf") or {}
        lines.append(f"| {s['name']} | {_num(s['model'].get('roc_auc'))} | {_num(base.get('roc_auc'))} | "
                     f"{_oracle(s['model'])} | {_oracle(base)} |")
    if report.get("shared_threshold"):
        lines += ["", "One threshold per label serves all of that label's splits. For diagnosis only (never used to "
                  "set a threshold: that would tune on held-out data), the thresholds at which the model would beat "
                  "TF-IDF (at TF-IDF's own validation thresholds, with the required margins) on every split of the "
                  "label at once; none means no threshold of the model does.", "",
                  "| label | splits | model threshold | thresholds winning on all of them |", "|---|---|---|---|"]
        for label, entry in report["shared_threshold"].items():
            windows = ", ".join(f"{lo:.2f}" if lo == hi else f"{lo:.2f}–{hi:.2f}" for lo, hi in entry["winning_thresholds"])
            lines.append(f"| {label} | {len(entry['splits'])} | {entry['model_threshold']:.2f} | {windows or 'none'} |")
    lines += ["", "Splits:", ""] + [f"- `{s['name']}`: {s['description']}" for s in report["splits"]]
    if "all_beat_tfidf" in report:
        lines += ["", f"Model beats TF-IDF on every split (with the required margins): **{'yes' if report['all_beat_tfidf'] else 'no'}**"]
    lines += ["", f"Evaluation took {report['seconds']} s.", ""]
    return "\n".join(lines)
