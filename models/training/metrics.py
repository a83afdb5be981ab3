"""Precision / recall / F1 and threshold choice, with no dependency beyond the standard library."""

from __future__ import annotations

from typing import Callable


def precision_recall_f1(gold: list[int], predicted: list[int]) -> dict[str, float]:
    tp = sum(1 for g, p in zip(gold, predicted) if g and p)
    fp = sum(1 for g, p in zip(gold, predicted) if not g and p)
    fn = sum(1 for g, p in zip(gold, predicted) if g and not p)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": sum(gold), "n": len(gold)}


def best_threshold(gold: list[int], scores: list[float], grid_step: float = 0.01) -> float:
    """The threshold in (0, 1) that maximises F1 of ``score >= threshold`` on the given data.

    When several grid points tie for the best F1 (small validation sets), the middle one is taken,
    so a perfectly separated tiny set does not yield a threshold hugging one class.
    """
    steps = int(round(1 / grid_step))
    grid = [round(i * grid_step, 4) for i in range(1, steps)]
    f1s = [precision_recall_f1(gold, [int(s >= t) for s in scores])["f1"] for t in grid]
    best_f1 = max(f1s)
    tied = [t for t, f1 in zip(grid, f1s) if f1 >= best_f1 - 1e-12]
    return tied[len(tied) // 2]


def choose_thresholds(gold: dict[str, list[int]], scores: dict[str, list[float]]) -> tuple[dict[str, float], dict[str, dict]]:
    """Per label, the F1-maximising threshold and the precision / recall / F1 it gives.

    A label whose gold values hold no positive keeps 0.5 and gets no report.
    """
    thresholds, report = {}, {}
    for label, values in gold.items():
        if not any(values):
            thresholds[label] = 0.5
            continue
        thresholds[label] = best_threshold(values, scores[label])
        report[label] = precision_recall_f1(values, [int(s >= thresholds[label]) for s in scores[label]])
    return thresholds, report


def thresholds_on_sets(sets: dict[str, tuple[list[str], list[int]]],
                       score_texts: Callable[[list[str]], dict[str, list[float]]]) -> tuple[dict[str, float], dict[str, dict]]:
    """Thresholds per label on its own (texts, gold) set (see ``data.threshold_sets``).

    ``score_texts`` maps texts to {label: scores}; each distinct text is scored once.
    """
    texts = list(dict.fromkeys(t for label_texts, _ in sets.values() for t in label_texts))
    scored = score_texts(texts)
    index = {t: i for i, t in enumerate(texts)}
    scores = {label: [scored[label][index[t]] for t in label_texts] for label, (label_texts, _) in sets.items()}
    return choose_thresholds({label: gold for label, (_, gold) in sets.items()}, scores)


def roc_auc(gold: list[int], scores: list[float]) -> float | None:
    """Area under the ROC curve: the chance that a random positive scores above a random negative
    (ties count half). Threshold-free, so it compares how two models *rank* a split. None when the
    split holds only one class."""
    positives = sum(1 for g in gold if g)
    negatives = len(gold) - positives
    if not positives or not negatives:
        return None
    # Mann-Whitney U from average ranks (1-based); tied scores share their mean rank.
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, g in zip(ranks, gold) if g)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def three_class(negative: float, positive: float, thr_negative: float, thr_positive: float) -> str:
    """negative / neutral / positive from two sigmoid scores: the label above its threshold with the larger margin."""
    neg_margin = negative - thr_negative
    pos_margin = positive - thr_positive
    if neg_margin < 0 and pos_margin < 0:
        return "neutral"
    return "negative" if neg_margin >= pos_margin else "positive"


def macro_f1(gold: list[str], predicted: list[str], classes: tuple[str, ...] = ("negative", "neutral", "positive")) -> float:
    scores = [precision_recall_f1([int(g == c) for g in gold], [int(p == c) for p in predicted])["f1"] for c in classes]
    return sum(scores) / len(scores)
