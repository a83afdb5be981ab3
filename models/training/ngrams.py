"""Fit the n-gram part of ``models.ngram_model`` and choose how much of it each label uses.

The features are the ones the model computes at run time (``ngram_model.ngram_counts`` on the
tokenizer's ids, texts cut at the inference length), weighted like sklearn's TfidfVectorizer
(sublinear tf, smooth idf, l2 norm, n-grams seen in at least ``min_df`` training texts), with one
logistic regression per label (liblinear; C = 4 as the TF-IDF baseline unless the config's ``ngram_c``
says otherwise). The per-label mix of
the transformer's and the n-gram model's logits is chosen on the validation split together with
the threshold (F1-maximising), so nothing here looks at a held-out split. Labels in the config's
``ngram_sentence_labels`` take the largest n-gram logit of the text and of each of its sentences.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from models.batching import batch_indices, map_batches
from models.training.data import Example, threshold_sets
from models.training.metrics import best_threshold, precision_recall_f1

log = logging.getLogger(__name__)
MIX_GRID = tuple(round(i / 10, 1) for i in range(11))


@dataclass
class NgramFit:
    keys: np.ndarray      # sorted int64 n-gram keys (the feature table)
    idf: np.ndarray       # float32 per key
    weight: np.ndarray    # float32 [keys, labels]
    bias: np.ndarray      # float32 [labels]
    fitted_labels: list[str]
    order: int = 3
    skip: bool = False    # skip-bigrams (token i with token i + 2) among the features
    special: list[int] = field(default_factory=list)  # ids left out of the n-grams


def special_ids(tokenizer, boundaries: bool = False) -> list[int]:
    """Token ids the n-grams leave out: every special token, or with ``boundaries`` all but [CLS] and
    [SEP], so that n-grams such as "[CLS] когда" and "ли [SEP]" tell where the text starts and ends."""
    keep = {tokenizer.cls_token_id, tokenizer.sep_token_id} if boundaries else set()
    return sorted({int(i) for i in tokenizer.all_special_ids} - {i for i in keep if i is not None})


def encode_texts(tokenizer, texts: list[str], max_length: int = 256):
    """(input_ids, attention_mask) of ``texts`` padded to the longest, as the classifier encodes them."""
    import torch

    encoded = tokenizer([t or " " for t in texts], truncation=True, max_length=max_length, padding=True,
                        return_tensors="pt")
    return encoded["input_ids"], encoded.get("attention_mask", torch.ones_like(encoded["input_ids"]))


def text_ngrams(tokenizer, texts: list[str], order: int, max_length: int = 256, skip: bool = False,
                boundaries: bool = False):
    """(row, key, count) arrays over all ``texts``, as the model counts them."""
    import torch

    from models.ngram_model import ngram_counts

    specials = torch.tensor(special_ids(tokenizer, boundaries), dtype=torch.long)
    rows, keys, counts = [], [], []
    for chunk in batch_indices(len(texts), 512):
        input_ids, attention = encode_texts(tokenizer, [texts[i] for i in chunk], max_length)
        r, k, c, real = ngram_counts(input_ids, attention, len(tokenizer), order, specials, skip)
        rows.append(np.asarray(chunk, dtype=np.int64)[r[real].numpy()])
        keys.append(k[real].numpy())
        counts.append(c[real].numpy())
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(keys), np.concatenate(counts)


def tfidf_table(keys: np.ndarray, n: int, min_df: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """The sorted n-gram table (keys seen in at least ``min_df`` of ``n`` texts) and its smooth idf.

    ``keys`` come from ``text_ngrams``, whose (row, key) pairs are distinct, so a key's count is its
    document frequency."""
    unique, df = np.unique(keys, return_counts=True)
    keep = df >= min_df
    return unique[keep].astype(np.int64), (np.log((1 + n) / (1 + df[keep])) + 1).astype(np.float32)


def tfidf_matrix(rows, keys, counts, n: int, table: np.ndarray, idf: np.ndarray):
    """Rows of sublinear-tf x idf over ``table`` (keys outside it dropped), l2-normalised, as csr."""
    from scipy.sparse import csr_matrix
    from sklearn.preprocessing import normalize

    position = np.clip(np.searchsorted(table, keys), 0, max(len(table) - 1, 0))
    used = table[position] == keys if len(table) else np.zeros(len(keys), bool)
    values = (1 + np.log(counts[used].astype(np.float32))) * idf[position[used]]
    return normalize(csr_matrix((values, (rows[used], position[used])), shape=(n, len(table)), dtype=np.float32))


def fit_ngrams(tokenizer, train: list[Example], labels: list[str], order: int = 3, min_df: int = 2, c: float = 4.0,
               seed: int = 13, max_length: int = 256, skip: bool = False, boundaries: bool = False) -> NgramFit:
    """TF-IDF over token n-grams + one logistic regression per label (rows where the label is known).

    ``skip`` adds skip-bigrams (token i with token i + 2); ``boundaries`` keeps [CLS] and [SEP] in
    the n-grams (see ``special_ids``). The n-gram table and idf come from the training texts.
    """
    from sklearn.linear_model import LogisticRegression

    n = len(train)
    rows, keys, counts = text_ngrams(tokenizer, [e.text for e in train], order, max_length, skip, boundaries)
    table, idf = tfidf_table(keys, n, min_df)
    x = tfidf_matrix(rows, keys, counts, n, table, idf)
    weight = np.zeros((len(table), len(labels)), dtype=np.float32)
    bias = np.zeros(len(labels), dtype=np.float32)
    fitted = []
    for j, label in enumerate(labels):
        label_rows = [i for i, e in enumerate(train) if label in e.targets]
        y = [train[i].targets[label] for i in label_rows]
        if len(set(y)) < 2:
            continue
        model = LogisticRegression(C=c, max_iter=2000, solver="liblinear", random_state=seed).fit(x[label_rows], y)
        weight[:, j] = model.coef_[0]
        bias[j] = model.intercept_[0]
        fitted.append(label)
    return NgramFit(table, idf, weight, bias, fitted, order, skip, special_ids(tokenizer, boundaries))


#: Tokens that end a sentence for ``ngram_sentence_labels`` (models/ngram_model.py).
SENTENCE_END_TOKENS = (".", "!", "?")


def sentence_settings(tokenizer, labels: list[str], sentence_labels: list[str]) -> tuple[list[int], list[int], list[int]]:
    """(label indices, sentence-end ids, [CLS, SEP] ids) for ``set_sentence_labels``."""
    vocabulary = tokenizer.get_vocab()
    ends = [vocabulary[token] for token in SENTENCE_END_TOKENS if token in vocabulary]
    if not ends:  # a tiny test vocabulary: every text is one sentence
        log.warning("the tokenizer has none of %s: n-grams of whole texts only", SENTENCE_END_TOKENS)
        return [], [], []
    return ([labels.index(label) for label in sentence_labels], ends,
            [tokenizer.cls_token_id, tokenizer.sep_token_id])


def to_ngram_model(model, fit: NgramFit):
    """A ``BertNgramForSequenceClassification`` with ``model``'s BERT weights and ``fit`` installed (mix 1.0)."""
    from models.ngram_model import BertNgramConfig, BertNgramForSequenceClassification

    settings = model.config.to_dict()
    for key in ("model_type", "architectures", "transformers_version"):
        settings.pop(key, None)
    config = BertNgramConfig(ngram_order=fit.order, ngram_skip=fit.skip, ngram_features=len(fit.keys),
                             ngram_special_ids=fit.special, **settings)
    config.architectures = ["BertNgramForSequenceClassification"]
    wide = BertNgramForSequenceClassification(config)
    missing, unexpected = wide.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not name.startswith("ngram_") for name in missing):
        raise ValueError(f"cannot carry the weights over: missing {missing}, unexpected {unexpected}")
    wide.set_ngram_model(fit.keys, fit.idf, fit.weight, fit.bias, [1.0] * config.num_labels)
    return wide.eval()


def logits_parts(model, tokenizer, texts: list[str], max_length: int = 256, batch_size: int = 256):
    """(transformer logits, n-gram logits) as numpy arrays [texts, labels]."""
    import torch

    def run(chunk: list[str]):
        input_ids, attention = encode_texts(tokenizer, chunk, max_length)
        deep = model.bert_logits(input_ids, attention).float().numpy()
        return list(zip(deep, model.ngram_logits(input_ids, attention).float().numpy()))

    model.eval()
    with torch.inference_mode():
        rows = map_batches(texts, batch_size, run)
    return np.stack([deep for deep, _ in rows]), np.stack([wide for _, wide in rows])


def best_mix(deep, wide, gold: list[int]) -> tuple[float, float, float, dict[str, float]]:
    """(F1, transformer share, threshold, F1 per share) of the mix of one label's logits with the best F1.

    ``deep`` and ``wide`` are that label's transformer and n-gram logits of the texts whose gold values
    are ``gold``; for each share in ``MIX_GRID`` the F1-maximising threshold is taken. Ties go to the
    larger transformer share."""
    best, grid = None, {}
    for w in MIX_GRID:
        scores = [1 / (1 + math.exp(-(w * float(d) + (1 - w) * float(n)))) for d, n in zip(deep, wide)]
        threshold = best_threshold(gold, scores)
        f1 = precision_recall_f1(gold, [int(s >= threshold) for s in scores])["f1"]
        grid[str(w)] = round(f1, 4)
        if best is None or f1 >= best[0] - 1e-12:
            best = (f1, w, threshold)
    return (*best, grid)


def choose_mix(model, tokenizer, validation: list[Example], labels: list[str], fitted: list[str],
               questions_without_marks: bool | str = False) -> tuple[list[float], dict[str, float], dict]:
    """Per label, the mix (share of the transformer's logit) and threshold with the best validation F1.

    Ties go to the larger transformer share. Labels the n-gram model was not fitted for keep 1.0.
    Returns (mix, thresholds, report with the validation F1 of every grid point).
    """
    sets = threshold_sets(validation, labels, questions_without_marks=questions_without_marks)
    texts = list(dict.fromkeys(t for label_texts, _ in sets.values() for t in label_texts))
    deep, wide = logits_parts(model, tokenizer, texts)
    index = {t: i for i, t in enumerate(texts)}
    mix, thresholds, report = [], {}, {}
    for j, label in enumerate(labels):
        if label not in sets or label not in fitted:
            mix.append(1.0)
            thresholds[label] = 0.5 if label not in sets else None
            continue
        label_texts, gold = sets[label]
        rows = [index[t] for t in label_texts]
        f1, share, threshold, grid = best_mix(deep[rows, j], wide[rows, j], gold)
        mix.append(share)
        thresholds[label] = threshold
        report[label] = {"mix": share, "threshold": threshold, "f1": round(f1, 4), "f1_by_mix": grid}
    return mix, thresholds, report


def add_ngram_part(model, tokenizer, train: list[Example], validation: list[Example], labels: list[str],
                   order: int = 3, seed: int = 13, questions_without_marks: bool | str = False,
                   c: float = 4.0, skip: bool = False, boundaries: bool = False,
                   sentence_labels: list[str] | tuple[str, ...] = ()):
    """Fit the n-gram part on ``train``, choose mix and thresholds on ``validation``.

    ``sentence_labels`` take the largest n-gram logit of the text and of each of its sentences
    (models/ngram_model.py), also while mix and threshold are chosen.

    Returns (model with the n-gram part, thresholds, report). Thresholds of labels the chooser
    could not set (no validation rows) are None: the caller keeps its own.
    """
    fit = fit_ngrams(tokenizer, train, labels, order=order, seed=seed, c=c, skip=skip, boundaries=boundaries)
    wide = to_ngram_model(model, fit)
    if sentence_labels:
        wide.set_sentence_labels(*sentence_settings(tokenizer, labels, list(sentence_labels)))
    mix, thresholds, report = choose_mix(wide, tokenizer, validation, labels, fit.fitted_labels, questions_without_marks)
    wide.set_mix(mix)
    report = {"order": order, "skip": skip, "boundaries": boundaries, "c": c, "features": len(fit.keys),
              "sentence_labels": [labels[j] for j in wide.config.ngram_sentence_labels],
              "mix": dict(zip(labels, mix)), "labels": report}
    return wide, thresholds, report
