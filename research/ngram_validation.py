"""Validation-only prototypes for the n-gram part: token-position features and label-noise filtering.

A research script, not part of the product (the figures are in the model card's research log): it
refits the n-gram logistic regressions of a shipped ``dozor-bert-ngram`` checkpoint with sklearn over
the same token n-grams the model computes (``models.training.ngrams.text_ngrams``), mixes them with
the checkpoint's own BERT logits and chooses mix and threshold per label on the validation split
exactly as ``choose_mix`` does. It never reads a held-out split. With no extra features it
reproduces the shipped model's n-gram table (574,825 keys), mixes (0.4 / 0.8 / 0.9 / 0.7) and
thresholds, at validation mean F1 0.7903 (training reported 0.7904), which checks the harness.
It imports only public functions of ``models``.

    python -m research.ngram_validation features '[[], [["tail", 4, 1]]]'
    python -m research.ngram_validation noise --tau 0.9 0.7 0.5 0.3

``features``: each variant is a list of extra key blocks ``[kind, k, order]``: unigrams (order 2: also
bigrams) of the last (``tail``) or first (``head``) k real tokens. ``noise``: drops training
"statements" whose 2-fold out-of-fold n-gram question score is at least tau from the question head's
training rows and reports the question validation F1.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LABELS = ["question", "negative", "toxic", "positive"]


def load(model_dir: Path, data_dir: Path, cache: Path, threads: int):
    """(tokenizer, train texts, train targets, validation sets, validation texts, "?"-free validation
    question rows, BERT logits of validation texts followed by those rows); cached in ``cache``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import models.ngram_model  # noqa: F401  (registers the architecture)
    from models.batching import batch_indices
    from models.training.config import TrainConfig
    from models.training.data import QUESTION_AID_SOURCE, strip_question_marks, threshold_sets
    from models.training.ngrams import encode_texts

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if cache.is_file():
        return (tokenizer, *pickle.loads(cache.read_bytes()))
    corpus = TrainConfig.from_yaml(data_dir=str(data_dir)).corpus()
    train_texts = [e.text for e in corpus.train]
    train_targets = [e.targets for e in corpus.train]
    sets = threshold_sets(corpus.validation, LABELS)
    val_texts = list(dict.fromkeys(t for texts, _ in sets.values() for t in texts))
    social = [e for e in corpus.validation if "question" in e.targets and e.source != QUESTION_AID_SOURCE]
    no_marks = ([strip_question_marks(e.text) for e in social], [e.targets["question"] for e in social])
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    deep, texts = [], val_texts + no_marks[0]
    with torch.inference_mode():
        for chunk in batch_indices(len(texts), 256):
            ids, attention = encode_texts(tokenizer, [texts[i] for i in chunk], 256)
            deep.append(model.bert_logits(ids, attention).float().numpy())
    parts = (train_texts, train_targets, sets, val_texts, no_marks, np.concatenate(deep))
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(parts))
    return (tokenizer, *parts)


class Harness:
    def __init__(self, args):
        (self.tok, self.train_texts, self.train_targets, self.sets, self.val_texts, self.no_marks,
         self.deep) = load(args.model, args.data_dir, args.cache, args.threads)
        v = len(self.tok)
        self.vocab = v
        self.base_space = v + v ** 2 + v ** 3 + v ** 2  # order 3 + skip-bigrams, as the shipped model
        self.index = {t: i for i, t in enumerate(self.val_texts)}
        self.all_val = self.val_texts + self.no_marks[0]

    def extra_ngrams(self, texts, blocks):
        from models.batching import batch_indices
        from models.training.ngrams import encode_texts, special_ids

        v, skip = self.vocab, set(special_ids(self.tok, False))
        rows, keys = [], []
        for chunk in batch_indices(len(texts), 1024):
            ids, attention = encode_texts(self.tok, [texts[i] for i in chunk], 256)
            for r, row in enumerate(chunk):
                seq = [t for t, a in zip(ids[r].tolist(), attention[r].tolist()) if a and t not in skip]
                for b, (kind, k, order) in enumerate(blocks):
                    offset = self.base_space + b * (v + v * v)
                    part = seq[-k:] if kind == "tail" else seq[:k]
                    for i, t in enumerate(part):
                        rows.append(row)
                        keys.append(offset + t)
                        if order >= 2 and i + 1 < len(part):
                            rows.append(row)
                            keys.append(offset + v + t * v + part[i + 1])
        space = self.base_space * 4
        unique, counts = np.unique(np.array(rows, np.int64) * space + np.array(keys, np.int64), return_counts=True)
        return unique // space, unique % space, counts

    def matrices(self, blocks):
        from models.training.ngrams import text_ngrams, tfidf_matrix, tfidf_table

        def features(texts):
            r, k, c = text_ngrams(self.tok, texts, 3, 256, skip=True, boundaries=True)
            if blocks:
                r2, k2, c2 = self.extra_ngrams(texts, blocks)
                r, k, c = np.concatenate([r, r2]), np.concatenate([k, k2]), np.concatenate([c, c2])
            return r, k, c

        n = len(self.train_texts)
        r, k, c = features(self.train_texts)
        table, idf = tfidf_table(k, n)
        return (tfidf_matrix(r, k, c, n, table, idf),
                tfidf_matrix(*features(self.all_val), len(self.all_val), table, idf), len(table))

    def choose(self, j, label, wide):
        """(best validation F1, mix, threshold, ROC AUC on the "?"-free question rows) as ``choose_mix``."""
        from sklearn.metrics import roc_auc_score

        from models.training.ngrams import best_mix

        texts, gold = self.sets[label]
        idx = [self.index[t] for t in texts]
        f1, mix, threshold, _ = best_mix(self.deep[idx, j], wide[idx], gold)
        s = len(self.val_texts)
        auc = roc_auc_score(self.no_marks[1], mix * self.deep[s:, j] + (1 - mix) * wide[s:])
        return f1, mix, threshold, auc

    def fit(self, x, rows, y, c):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=c, max_iter=2000, solver="liblinear", random_state=13).fit(x[rows], y)

    def label_rows(self, label):
        rows = np.array([i for i, t in enumerate(self.train_targets) if label in t])
        return rows, np.array([self.train_targets[i][label] for i in rows])


def cmd_features(h: Harness, args) -> None:
    for blocks in json.loads(args.variants):
        start = time.time()
        x, xv, size = h.matrices([tuple(b) for b in blocks])
        out, f1s = {"blocks": blocks, "features": size}, []
        for j, label in enumerate(LABELS):
            rows, y = h.label_rows(label)
            m = h.fit(x, rows, y, args.c)
            f1, mix, threshold, auc = h.choose(j, label, xv @ m.coef_[0] + m.intercept_[0])
            f1s.append(f1)
            out[label] = {"f1": round(f1, 4), "mix": mix, "threshold": round(threshold, 3)}
            if label == "question":
                out["question_no_marks_auc"] = round(auc, 4)
        out.update(mean=round(float(np.mean(f1s)), 4), seconds=round(time.time() - start))
        print(json.dumps(out, ensure_ascii=False), flush=True)


def cmd_noise(h: Harness, args) -> None:
    x, xv, _ = h.matrices([])
    rows, y = h.label_rows("question")
    fold = np.random.default_rng(13).integers(0, 2, len(rows))
    oof = np.zeros(len(rows))
    for f in (0, 1):
        oof[fold == f] = h.fit(x, rows[fold != f], y[fold != f], args.c).predict_proba(x[rows[fold == f]])[:, 1]
    statements = np.flatnonzero(y == 0)
    for i in statements[np.argsort(-oof[statements])][:args.show]:
        print(f"{oof[i]:.3f}  {h.train_texts[rows[i]][:110]!r}")
    for tau in args.tau:
        drop = (y == 0) & (oof >= tau)
        m = h.fit(x, rows[~drop], y[~drop], args.c)
        f1, mix, threshold, auc = h.choose(0, "question", xv @ m.coef_[0] + m.intercept_[0])
        print(json.dumps({"tau": tau, "dropped": int(drop.sum()), "question_f1": round(f1, 4), "mix": mix,
                          "threshold": round(threshold, 3), "question_no_marks_auc": round(auc, 4)}), flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=REPO / "models/default", help="a dozor-bert-ngram checkpoint")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/dozor-ngram-validation.pkl"),
                        help="corpus and BERT logits cache (delete it after changing --model or --data-dir)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--c", type=float, default=16.0, help="inverse L2 strength (the shipped ngram_c)")
    sub = parser.add_subparsers(dest="command", required=True)
    features = sub.add_parser("features", help="extra position features")
    features.add_argument("variants", help='JSON list of variants, each a list of [kind, k, order] blocks')
    noise = sub.add_parser("noise", help="label-noise filtering of the question head")
    noise.add_argument("--tau", type=float, nargs="+", default=[0.9, 0.7, 0.5, 0.3])
    noise.add_argument("--show", type=int, default=25, help="print the statements scored highest")
    args = parser.parse_args(argv)
    harness = Harness(args)
    {"features": cmd_features, "noise": cmd_noise}[args.command](harness, args)


if __name__ == "__main__":
    main()
