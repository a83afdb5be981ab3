"""Fit the topic head (``models.topic_head``) on the themed Kursk appeals and score it against TF-IDF.

The data is the fixed split of ``models.in_domain.topics.appeal_splits``: the appeals outside the
in-domain draw, each with the theme its category maps to in the reviewed ``topics.yaml``, 80 %
for training and 20 % held out. Everything is chosen on the training part (the regularisation by
5-fold cross-validation, the probability scale on the out-of-fold scores); the held-out part is
read once, to report per-theme precision / recall / F1 of the head and, in the same run, of the
TF-IDF reference (the pipeline of ``models.in_domain.topics.tfidf_report``), with a paired
bootstrap interval of the macro-F1 difference.

The head: a token n-gram TF-IDF (sublinear tf, smooth idf, l2) over the classifier's own
tokenizer ids, n-grams seen in at least ``min_df`` training appeals, and a one-vs-rest linear SVM
with balanced class weights. ``compare_designs`` measures the alternatives that use the encoder
(a linear model over its mean-pooled hidden states, alone and beside the n-grams), so the choice
can be checked again when the encoder changes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Regularisation grid of the linear SVM, chosen by cross-validated macro-F1 on the training part.
C_GRID = (0.05, 0.1, 0.2, 0.3, 0.5)
FOLDS = 5
SEED = 13
#: The most probable theme becomes the comment's topic only from this probability on: 83 % of the
#: held-out appeals get one (86 % of those right), 10 % of general VK posts (RuSentiment test) do
#: (at 0.3: 94 % and 41 %). `--compare` prints the table; models/in_domain/README.md has it.
MIN_PROBABILITY = 0.5
#: The probabilities `--compare` tries for that rule.
GATE_GRID = (0.3, 0.4, 0.5, 0.6)
#: Bootstrap resamples of the held-out part for the interval of F1(head) - F1(TF-IDF).
BOOTSTRAP = 1000
#: Themes absent from the training rows get this bias: they are never chosen.
ABSENT_BIAS = -30.0

Rows = Sequence[tuple[str, str]]


# --- features and fitting -----------------------------------------------------------------------

def ngram_features(tokenizer, texts: list[str], order: int, table=None, idf=None, min_df: int = 2,
                   max_length: int = 256):
    """(csr TF-IDF matrix, table, idf) of ``texts``; the table and idf are fitted when not given."""
    from models.training.ngrams import text_ngrams, tfidf_matrix, tfidf_table

    rows, keys, counts = text_ngrams(tokenizer, texts, order, max_length)
    if table is None:
        table, idf = tfidf_table(keys, len(texts), min_df)
    return tfidf_matrix(rows, keys, counts, len(texts), table, idf), table, idf


def _svm(c: float, seed: int = SEED):
    from sklearn.svm import LinearSVC

    return LinearSVC(C=c, class_weight="balanced", random_state=seed, max_iter=5000)


def _folds(y: np.ndarray, folds: int, seed: int):
    from sklearn.model_selection import StratifiedKFold

    smallest = min(np.unique(y, return_counts=True)[1])
    folds = max(2, min(folds, int(smallest)))
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def choose_c(x, y: np.ndarray, grid: Sequence[float] = C_GRID, folds: int = FOLDS, seed: int = SEED):
    """(best C, {C: cross-validated macro-F1}, out-of-fold decision values of the best C, classes)."""
    from sklearn.metrics import f1_score

    splits = _folds(y, folds, seed)
    classes = np.unique(y)
    scores, decisions = {}, {}
    for c in grid:
        oof = np.zeros((len(y), len(classes)))
        f1s = []
        for fit, test in splits:
            model = _svm(c, seed).fit(x[fit], y[fit])
            d = _decision_matrix(model, x[test], classes)
            oof[test] = d
            f1s.append(f1_score(y[test], classes[d.argmax(1)], average="macro", zero_division=0))
        scores[c] = float(np.mean(f1s))
        decisions[c] = oof
    best = max(grid, key=lambda c: (round(scores[c], 6), -c))  # ties: the stronger regularisation
    return best, scores, decisions[best], classes


def _decision_matrix(model, x, classes: np.ndarray) -> np.ndarray:
    """Decision values (rows, classes) in the order of ``classes`` (themes a fold lacks: -inf-ish)."""
    d = model.decision_function(x)
    if d.ndim == 1:  # two classes: sklearn gives the second class's margin
        d = np.stack([-d, d], axis=1)
    out = np.full((x.shape[0], len(classes)), ABSENT_BIAS)
    index = {c: i for i, c in enumerate(classes)}
    for j, c in enumerate(model.classes_):
        out[:, index[c]] = d[:, j]
    return out


def fit_scale(decisions: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    """The factor s for which softmax(s * decision) has the least log loss on these (out-of-fold)
    decision values: probabilities that mean something, the argmax unchanged."""
    from scipy.optimize import minimize_scalar

    target = np.searchsorted(classes, y)

    def loss(log_s: float) -> float:
        z = math.exp(log_s) * decisions
        z = z - z.max(axis=1, keepdims=True)
        return float(-(z[np.arange(len(y)), target] - np.log(np.exp(z).sum(axis=1))).mean())

    return round(math.exp(minimize_scalar(loss, bounds=(-3.0, 4.0), method="bounded").x), 4)


def fit_topic_head(tokenizer, train: Rows, themes: dict[str, str], order: int = 1, min_df: int = 2,
                   grid: Sequence[float] = C_GRID, folds: int = FOLDS, seed: int = SEED,
                   min_probability: float = MIN_PROBABILITY, max_length: int = 256):
    """(TopicHead, report): TF-IDF over the tokenizer's n-grams and a linear SVM, C by cross-validation.

    The n-gram table and idf come from all training rows, also inside the cross-validation (it
    picks C among close values; the held-out figures never depend on it)."""
    import torch

    from models.topic_head import TopicHead
    from models.training.ngrams import special_ids

    texts, y = [t for t, _ in train], np.array([theme for _, theme in train])
    unknown = sorted(set(y) - set(themes))
    if unknown:
        raise ValueError(f"training rows carry themes that are not in the theme list: {unknown}")
    started = time.perf_counter()
    x, table, idf = ngram_features(tokenizer, texts, order, min_df=min_df, max_length=max_length)
    if len(table) == 0:
        raise ValueError(f"no n-gram occurs in {min_df} training texts: too few texts")
    c, cv_scores, oof, classes = choose_c(x, y, grid, folds, seed)
    scale = fit_scale(oof, y, classes)
    model = _svm(c, seed).fit(x, y)
    order_ = list(themes)
    weight = np.zeros((len(table), len(order_)), dtype=np.float32)
    bias = np.full(len(order_), ABSENT_BIAS, dtype=np.float32)
    coef, intercept = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # two classes
        coef, intercept = np.vstack([-coef, coef]), np.array([-intercept[0], intercept[0]])
    for j, theme in enumerate(model.classes_):
        weight[:, order_.index(theme)] = coef[j]
        bias[order_.index(theme)] = intercept[j]
    head = TopicHead(
        themes=order_, names=dict(themes), keys=torch.as_tensor(table, dtype=torch.long),
        idf=torch.as_tensor(idf, dtype=torch.float32), weight=torch.from_numpy(weight),
        bias=torch.from_numpy(bias), vocab_size=len(tokenizer), order=order,
        special_ids=tuple(special_ids(tokenizer)), scale=scale, min_probability=min_probability,
    )
    report = {"c": c, "cv_macro_f1": {str(k): round(v, 4) for k, v in cv_scores.items()}, "scale": scale,
              "order": order, "min_df": min_df, "features": len(table), "train_rows": len(texts),
              "seconds": round(time.perf_counter() - started, 1)}
    return head, report


def head_probabilities(head, tokenizer, texts: list[str], max_length: int = 256,
                       batch_size: int = 256) -> np.ndarray:
    """Theme probabilities (texts, themes) as the classifier computes them (same encoding)."""
    from models.batching import map_batches
    from models.training.ngrams import encode_texts

    def run(chunk: list[str]):
        input_ids, attention = encode_texts(tokenizer, chunk, max_length)
        return list(head.probabilities(input_ids, attention).numpy())

    return np.stack(map_batches(texts, batch_size, run)) if texts else np.zeros((0, len(head.themes)))


# --- the TF-IDF reference -----------------------------------------------------------------------

def tfidf_predictions(train: Rows, held_out: Rows) -> list[str]:
    """Held-out predictions of the reference: the pipeline of models.in_domain.topics.tfidf_report
    (char 2-5 + word 1-2 TF-IDF, logistic regression C = 10, balanced); a test keeps them equal."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    features = FeatureUnion([
        ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)),
        ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)),
    ])
    model = make_pipeline(features, LogisticRegression(C=10.0, max_iter=3000, class_weight="balanced"))
    model.fit([t for t, _ in train], [y for _, y in train])
    return list(model.predict([t for t, _ in held_out]))


# --- scoring ------------------------------------------------------------------------------------

def per_theme(gold: Sequence[str], predicted: Sequence[str], themes: Sequence[str]) -> dict:
    """{theme: {precision, recall, f1, support}} plus "macro" (over the themes present in ``gold``)."""
    from sklearn.metrics import precision_recall_fscore_support

    present = [t for t in themes if t in set(gold)]
    p, r, f, s = precision_recall_fscore_support(gold, predicted, labels=present, zero_division=0)
    out = {t: {"precision": round(float(p[i]), 4), "recall": round(float(r[i]), 4), "f1": round(float(f[i]), 4),
               "support": int(s[i])} for i, t in enumerate(present)}
    out["macro"] = {"precision": round(float(np.mean(p)), 4), "recall": round(float(np.mean(r)), 4),
                    "f1": round(float(np.mean(f)), 4), "support": int(np.sum(s))}
    out["accuracy"] = round(float(np.mean(np.asarray(gold) == np.asarray(predicted))), 4)
    return out


def paired_bootstrap(gold: Sequence[str], a: Sequence[str], b: Sequence[str], themes: Sequence[str],
                     resamples: int = BOOTSTRAP, seed: int = SEED) -> dict:
    """95 % interval of macro-F1(a) - macro-F1(b) over resamples of the rows (the same rows for both)."""
    from sklearn.metrics import f1_score

    gold, a, b = np.asarray(gold), np.asarray(a), np.asarray(b)
    rng = np.random.default_rng(seed)
    labels = [t for t in themes if t in set(gold)]
    diffs = []
    for _ in range(resamples):
        i = rng.integers(0, len(gold), len(gold))
        diffs.append(f1_score(gold[i], a[i], labels=labels, average="macro", zero_division=0)
                     - f1_score(gold[i], b[i], labels=labels, average="macro", zero_division=0))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"low": round(float(low), 4), "high": round(float(high), 4),
            "share_above_zero": round(float(np.mean(np.asarray(diffs) > 0)), 4), "resamples": resamples}


def coverage(probabilities: np.ndarray, gold: Sequence[str], themes: Sequence[str], min_probability: float) -> dict:
    """How many rows get a topic at ``min_probability``, and how many of those are right."""
    best = probabilities.max(axis=1)
    chosen = np.asarray(themes)[probabilities.argmax(axis=1)]
    kept = best >= min_probability
    right = chosen[kept] == np.asarray(gold)[kept]
    return {"min_probability": min_probability, "with_topic": round(float(kept.mean()), 4),
            "accuracy_with_topic": round(float(right.mean()) if kept.any() else 0.0, 4)}


# --- designs that use the encoder (--compare) ---------------------------------------------------

def encoder_features(classifier, texts: list[str]) -> dict[str, np.ndarray]:
    """Mean-pooled (over real tokens) vectors of the classifier's encoder for ``texts``:
    ``embeddings`` (the input layer) and ``last`` (the last hidden layer)."""
    import torch

    from models.batching import map_batches

    base = classifier.model.base_model
    captured = {}
    hooks = [base.embeddings.register_forward_hook(lambda _m, _a, out: captured.__setitem__("embeddings", out)),
             base.register_forward_hook(lambda _m, _a, out: captured.__setitem__("last", out[0]))]

    def run(chunk: list[str]):
        encoded = classifier.encode(chunk)
        with torch.inference_mode():
            classifier.model(**encoded)
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        pooled = {k: ((v * mask).sum(1) / mask.sum(1)).numpy() for k, v in captured.items()}
        return [{k: v[i] for k, v in pooled.items()} for i in range(len(chunk))]

    try:
        rows = map_batches(texts, 64, run, lengths=[len(t) for t in texts])
    finally:
        for hook in hooks:
            hook.remove()
    return {k: np.stack([r[k] for r in rows]) for k in ("embeddings", "last")}


def general_posts(data_dir: Path, n_train: int = 1000, n_test: int = 1500, seed: int = SEED) -> tuple[list[str], list[str]]:
    """General VK posts (RuSentiment), most about no theme a ЦУР watches: ``n_train`` drawn (seeded)
    from its training file among the posts that name no organisation or service (``ORG_PATTERN`` of
    models/in_domain/select.py), and the first ``n_test`` of its test file."""
    import csv
    import random

    from models.in_domain.select import ORG_PATTERN

    def read(name: str) -> list[str]:
        with open(data_dir / "rusentiment" / name, encoding="utf-8", newline="") as f:
            return [row["text"].strip() for row in csv.DictReader(f) if row["text"].strip()]

    pool = [t for t in read("rusentiment_random_posts.csv") if not ORG_PATTERN.search(t)]
    return random.Random(seed).sample(pool, min(n_train, len(pool))), read("rusentiment_test.csv")[:n_test]


def gate_table(head, tokenizer, held_out: Rows, posts: list[str], max_length: int = 256,
               grid: Sequence[float] = GATE_GRID) -> list[dict]:
    """Per ``min_probability``: the share of held-out appeals given a topic (and how many of those are
    right) and the share of general posts given one (they should get none). A ``none`` theme, where
    the head has one, counts as no topic."""
    gold = np.asarray([theme for _, theme in held_out])
    names = np.asarray(head.themes)
    rows = []
    appeals = head_probabilities(head, tokenizer, [t for t, _ in held_out], max_length)
    general = head_probabilities(head, tokenizer, posts, max_length)
    for p in grid:
        def given(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            chosen = names[probabilities.argmax(axis=1)]
            return (probabilities.max(axis=1) >= p) & (chosen != "none"), chosen

        kept, chosen = given(appeals)
        rows.append({"min_probability": p, "appeals_with_topic": round(float(kept.mean()), 4),
                     "appeals_right": round(float((chosen[kept] == gold[kept]).mean()) if kept.any() else 0.0, 4),
                     "posts_with_topic": round(float(given(general)[0].mean()), 4)})
    return rows


def compare_designs(classifier, train: Rows, held_out: Rows, themes: dict[str, str], data_dir: Path,
                    order: int = 1, min_df: int = 2, seed: int = SEED) -> dict:
    """What the alternatives score, each with C chosen by cross-validation on the training part:

    * ``designs``: held-out macro-F1 of the head's design and of linear models over the encoder's
      mean-pooled hidden states, alone and beside the n-grams;
    * ``gate``: the ``min_probability`` rule at several values (``gate_table``), for the head and for
      a head with a 17th theme ``none`` trained on 1,000 general posts (``general_posts``)."""
    import scipy.sparse as sp
    from sklearn.preprocessing import StandardScaler

    texts, y = [t for t, _ in train], np.array([theme for _, theme in train])
    gold = [theme for _, theme in held_out]
    held_texts = [t for t, _ in held_out]
    tokenizer = classifier.tokenizer
    x, table, idf = ngram_features(tokenizer, texts, order, min_df=min_df, max_length=classifier.max_length)
    xh, _, _ = ngram_features(tokenizer, held_texts, order, table, idf, max_length=classifier.max_length)
    dense, dense_h = encoder_features(classifier, texts), encoder_features(classifier, held_texts)

    def scaled(name: str):
        scaler = StandardScaler().fit(dense[name])
        norm = math.sqrt(dense[name].shape[1])  # rows of about unit length, as the TF-IDF rows
        return scaler.transform(dense[name]) / norm, scaler.transform(dense_h[name]) / norm

    candidates = {"token n-gram TF-IDF (shipped)": (x, xh)}
    for name, label in (("last", "last hidden layer, mean-pooled"), ("embeddings", "embedding layer, mean-pooled")):
        a, ah = scaled(name)
        candidates[f"encoder: {label}"] = (a, ah)
        for w in (0.25, 0.5):
            candidates[f"n-grams + {w} x {label}"] = (sp.hstack([x, sp.csr_matrix(w * a)]).tocsr(),
                                                       sp.hstack([xh, sp.csr_matrix(w * ah)]).tocsr())
    designs = []
    for name, (a, ah) in candidates.items():
        c, scores, _, classes = choose_c(a, y, seed=seed)
        predicted = classes[_decision_matrix(_svm(c, seed).fit(a, y), ah, classes).argmax(1)]
        designs.append({"design": name, "c": c, "cv_macro_f1": round(scores[c], 4),
                        "held_out_macro_f1": per_theme(gold, predicted, list(themes))["macro"]["f1"]})
        log.info("%s: C %s, cv %.3f, held out %.3f", name, c, scores[c], designs[-1]["held_out_macro_f1"])

    none_train, posts = general_posts(data_dir, seed=seed)
    head, _ = fit_topic_head(tokenizer, train, themes, order=order, min_df=min_df, seed=seed,
                             max_length=classifier.max_length)
    with_none, fit = fit_topic_head(tokenizer, list(train) + [(t, "none") for t in none_train],
                                    {**themes, "none": "нет темы"}, order=order, min_df=min_df, seed=seed,
                                    max_length=classifier.max_length)
    probabilities = head_probabilities(with_none, tokenizer, held_texts, classifier.max_length)
    theme_columns = [i for i, t in enumerate(with_none.themes) if t != "none"]
    predicted = np.asarray(with_none.themes)[theme_columns][probabilities[:, theme_columns].argmax(1)]
    designs.append({"design": f"token n-gram TF-IDF with a 'none' theme ({len(none_train)} general posts)",
                    "c": fit["c"], "cv_macro_f1": None,
                    "held_out_macro_f1": per_theme(gold, predicted, list(themes))["macro"]["f1"]})
    gate = {"head": gate_table(head, tokenizer, held_out, posts, classifier.max_length),
            "with_none": gate_table(with_none, tokenizer, held_out, posts, classifier.max_length),
            "general_posts": len(posts)}
    return {"designs": designs, "gate": gate}


# --- the command --------------------------------------------------------------------------------

def train_topics(model_dir: str | Path, data_dir: str | Path | None = None, write: bool = True,
                 baseline: bool = True, compare: bool = False, min_probability: float = MIN_PROBABILITY,
                 threads: int = 2) -> dict:
    """Fit the head on the training appeals with ``model_dir``'s tokenizer, score it and the TF-IDF
    reference on the held-out appeals, and (``write``) store topics.json + topics.safetensors in
    ``model_dir``. Returns the report."""
    import torch

    from models.classifier import TextClassifier
    from models.in_domain.select import DATA
    from models.in_domain.topics import appeal_splits, read_topics
    from models.topic_head import tokenizer_fingerprint

    torch.set_num_threads(threads)
    started = time.perf_counter()
    model_dir = Path(model_dir)
    themes, _ = read_topics()
    train, held_out = appeal_splits(Path(data_dir)) if data_dir else appeal_splits()
    classifier = TextClassifier.load(model_dir, threads=threads)
    tokenizer = classifier.tokenizer
    head, fit_report = fit_topic_head(tokenizer, train, themes, min_probability=min_probability,
                                      max_length=classifier.max_length)
    gold = [theme for _, theme in held_out]
    probabilities = head_probabilities(head, tokenizer, [t for t, _ in held_out], classifier.max_length)
    predicted = [head.themes[i] for i in probabilities.argmax(axis=1)]
    report = {"model": str(model_dir), "train_rows": len(train), "held_out_rows": len(held_out),
              "themes": themes, "fit": fit_report, "head": per_theme(gold, predicted, list(themes)),
              "coverage": coverage(probabilities, gold, head.themes, min_probability)}
    if baseline:
        reference = tfidf_predictions(train, held_out)
        report["tfidf"] = per_theme(gold, reference, list(themes))
        report["bootstrap"] = paired_bootstrap(gold, predicted, reference, list(themes))
    if compare:
        report.update(compare_designs(classifier, train, held_out, themes, Path(data_dir) if data_dir else DATA))
    report["seconds"] = round(time.perf_counter() - started, 1)
    if write:
        summary = {"trained": {"data": "kursk_appeals, training part of models.in_domain.topics.appeal_splits",
                               "rows": len(train), **{k: fit_report[k] for k in ("c", "cv_macro_f1", "min_df")}},
                   "held_out": {"rows": len(held_out), "macro_f1": report["head"]["macro"]["f1"],
                                **({"tfidf_macro_f1": report["tfidf"]["macro"]["f1"]} if baseline else {})}}
        report["written"] = [str(p) for p in head.save(model_dir, tokenizer_fingerprint(tokenizer), summary)]
    classifier.close()
    return report


def report_markdown(report: dict) -> str:
    """The per-theme table (head, and TF-IDF where scored) and the macro-F1 lines, as markdown."""
    themes, head, tfidf = report["themes"], report["head"], report.get("tfidf")
    lines = [f"Topic head of {report['model']}: {report['train_rows']} training appeals, "
             f"{report['held_out_rows']} held out; C = {report['fit']['c']} (cross-validated), "
             f"{report['fit']['features']:,} n-grams", ""]
    header = "| theme | held out | head P / R / F1 |" + (" TF-IDF P / R / F1 |" if tfidf else "")
    lines += [header, "|---|---|---|" + ("---|" if tfidf else "")]

    def cell(entry: dict | None) -> str:
        if entry is None:
            return " – |"
        return f" {entry['precision']:.3f} / {entry['recall']:.3f} / {entry['f1']:.3f} |"

    for key, name in themes.items():
        if key not in head:
            continue
        line = f"| {name} | {head[key]['support']} |" + cell(head[key])
        lines.append(line + (cell(tfidf.get(key)) if tfidf else ""))
    macro = f"| **macro** | {head['macro']['support']} | **{head['macro']['f1']:.3f}** |"
    lines.append(macro + (f" **{tfidf['macro']['f1']:.3f}** |" if tfidf else ""))
    lines.append("")
    if tfidf:
        b = report["bootstrap"]
        lines.append(f"macro-F1: head {head['macro']['f1']:.3f}, TF-IDF {tfidf['macro']['f1']:.3f}; "
                     f"difference 95 % interval [{b['low']:+.3f}, {b['high']:+.3f}] "
                     f"({b['resamples']} paired bootstrap resamples; head ahead in {b['share_above_zero']:.0%})")
    c = report["coverage"]
    lines.append(f"topic given (probability >= {c['min_probability']}): {c['with_topic']:.1%} of held-out appeals, "
                 f"{c['accuracy_with_topic']:.1%} of those right")
    if report.get("designs"):
        lines += ["", "| design | C | cross-validated macro-F1 | held-out macro-F1 |", "|---|---|---|---|"]
        for d in report["designs"]:
            cv = "–" if d["cv_macro_f1"] is None else f"{d['cv_macro_f1']:.3f}"
            lines.append(f"| {d['design']} | {d['c']} | {cv} | {d['held_out_macro_f1']:.3f} |")
    if report.get("gate"):
        gate = report["gate"]
        lines += ["", f"| min_probability | head: appeals with a topic / right / general posts with a topic "
                      f"| with 'none': the same |", "|---|---|---|"]
        for plain, none in zip(gate["head"], gate["with_none"]):
            lines.append(f"| {plain['min_probability']} | " + " | ".join(
                f"{g['appeals_with_topic']:.1%} / {g['appeals_right']:.1%} / {g['posts_with_topic']:.1%}"
                for g in (plain, none)) + " |")
        lines.append(f"(general posts: the first {gate['general_posts']} of the RuSentiment test file)")
    return "\n".join(lines)
