"""The transformer + token n-gram model (models/ngram_model.py, models/training/ngrams.py).

The n-gram part must compute exactly what sklearn's TfidfVectorizer + LogisticRegression would
on the same token n-grams (checked against an independent implementation), survive save/load
through the Auto classes and transformers' pipeline, and mix the two logits as configured.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from models.classifier import TextClassifier
from models.ngram_model import BertNgramForSequenceClassification, key_space, ngram_keys
from models.training.data import build_corpus
from models.training.ngrams import add_ngram_part, fit_ngrams, logits_parts
from models.training.train import add_ngrams_to_checkpoint, fine_tune, rechoose_thresholds, train_default
from tests.models.test_training import QUESTIONS, data_dir, tiny_config, _rows  # noqa: F401  (fixture)


def test_ngram_keys_cover_real_tokens_only_and_orders_never_collide():
    vocab, specials = 10, torch.tensor([0, 2, 3])  # pad 0, cls 2, sep 3
    ids = torch.tensor([[2, 5, 6, 5, 3, 0], [2, 9, 3, 0, 0, 0]])
    mask = (ids != 0).long()
    keys = ngram_keys(ids, mask, vocab, 3, specials)
    row0 = sorted(k for k in keys[0].tolist() if k >= 0)
    # unigrams 5, 6, 5; bigrams 56, 65 (+10); trigram 565 (+10 +100)
    assert row0 == sorted([5, 6, 5, 10 + 56, 10 + 65, 110 + 565])
    assert sorted(k for k in keys[1].tolist() if k >= 0) == [9]
    assert key_space(vocab, 3) == 1110
    with pytest.raises(ValueError, match="lower ngram_order"):
        key_space(10 ** 6, 3)
    assert key_space(120_000, 3) > 0  # vocabularies of the size of e5's cut one (25k) and well above fit


def test_skip_bigrams_and_boundary_tokens_get_their_own_keys():
    vocab = 10
    ids = torch.tensor([[2, 5, 6, 7, 3, 0], [2, 9, 3, 0, 0, 0]])  # pad 0, cls 2, sep 3
    mask = (ids != 0).long()
    keys = ngram_keys(ids, mask, vocab, 2, torch.tensor([0, 3]), skip=True)  # [CLS] kept, [SEP] left out
    assert key_space(vocab, 2, skip=True) == 10 + 100 + 100
    # unigrams 2, 5, 6, 7; bigrams 25, 56, 67 (+10); skip-bigrams 26, 57 (+110): nothing reaches past [SEP]
    assert sorted(k for k in keys[0].tolist() if k >= 0) == sorted([2, 5, 6, 7, 10 + 25, 10 + 56, 10 + 67, 110 + 26, 110 + 57])
    assert sorted(k for k in keys[1].tolist() if k >= 0) == [2, 9, 10 + 29]  # too short for a skip-bigram
    short = ngram_keys(ids[:, :2], mask[:, :2], vocab, 3, torch.tensor([0]), skip=True)  # no trigram, no skip fits
    assert sorted(k for k in short[0].tolist() if k >= 0) == [2, 5, 10 + 25]


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("plain")
    train_default(tiny_config(data_dir, epochs=2), out)
    return out


def _independent_tfidf_lr(tokenizer, train_texts, label_rows, label_y, texts, order=3, skip=False, boundaries=False):
    """sklearn's own vectoriser over the same n-grams, computed in plain Python."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vocab, specials = len(tokenizer), set(tokenizer.all_special_ids)
    if boundaries:
        specials -= {tokenizer.cls_token_id, tokenizer.sep_token_id}

    def analyse(text):
        ids = [i for i in tokenizer(text or " ", truncation=True, max_length=256)["input_ids"] if i not in specials]
        grams, offset = list(ids), vocab
        for n in range(2, order + 1):
            grams += [offset + sum(ids[i + k] * vocab ** (n - 1 - k) for k in range(n)) for i in range(len(ids) - n + 1)]
            offset += vocab ** n
        if skip:
            grams += [offset + ids[i] * vocab + ids[i + 2] for i in range(len(ids) - 2)]
        return grams

    vectoriser = TfidfVectorizer(analyzer=analyse, sublinear_tf=True, min_df=2, dtype=np.float32)
    x = vectoriser.fit_transform(train_texts)
    model = LogisticRegression(C=4.0, max_iter=2000, solver="liblinear", random_state=13).fit(x[label_rows], label_y)
    return sorted(vectoriser.vocabulary_), model.decision_function(vectoriser.transform(texts))


@pytest.mark.parametrize("skip, boundaries", [(False, False), (True, True)])
def test_ngram_part_is_sklearn_tfidf_with_logistic_regression(data_dir, trained, skip, boundaries):  # noqa: F811
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    corpus = build_corpus(data_dir, seed=13)
    tokenizer = AutoTokenizer.from_pretrained(str(trained))
    plain = AutoModelForSequenceClassification.from_pretrained(str(trained))
    labels = [plain.config.id2label[i] for i in range(plain.config.num_labels)]
    model, thresholds, report = add_ngram_part(plain, tokenizer, corpus.train, corpus.validation, labels,
                                               skip=skip, boundaries=boundaries)
    assert model.config.ngram_skip is skip
    assert (tokenizer.cls_token_id in model.config.ngram_special_ids) is not boundaries
    assert isinstance(model, BertNgramForSequenceClassification)
    assert report["features"] == model.ngram_keys.numel() > 0
    assert all(0.0 <= m <= 1.0 for m in model.config.ngram_mix)

    rows = [i for i, e in enumerate(corpus.train) if "toxic" in e.targets]
    texts = [t for s in corpus.held_out for t in s.texts][:40] + ["", "совсем новое слово"]
    table, expected = _independent_tfidf_lr(tokenizer, [e.text for e in corpus.train], rows,
                                            [corpus.train[i].targets["toxic"] for i in rows], texts, skip=skip,
                                            boundaries=boundaries)
    assert model.ngram_keys.tolist() == table
    _, wide = logits_parts(model, tokenizer, texts)
    np.testing.assert_allclose(wide[:, labels.index("toxic")], expected, atol=1e-4)

    # the transformer part is the trained model, untouched, and the output mixes the two logits
    encoded = tokenizer(texts, truncation=True, max_length=256, padding=True, return_tensors="pt")
    with torch.inference_mode():
        deep = plain(**encoded).logits
        mixed = model(**encoded).logits
    mix = torch.tensor(model.config.ngram_mix)
    torch.testing.assert_close(mixed, mix * deep + (1 - mix) * torch.from_numpy(wide), atol=1e-5, rtol=1e-5)


def test_ngram_order_in_training_writes_a_checkpoint_that_loads_everywhere(data_dir, tmp_path):  # noqa: F811
    from transformers import pipeline

    out = tmp_path / "wide"
    # the shipped model's n-gram settings: [CLS]/[SEP] kept, skip-bigrams
    summary = train_default(tiny_config(data_dir, epochs=2, ngram_order=3, ngram_skip=True, ngram_boundaries=True), out)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "dozor-bert-ngram" and config["ngram_order"] == 3 and config["ngram_skip"] is True
    # the checkpoint carries its modeling code for plain transformers (trust_remote_code=True)
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "ngram_model.BertNgramForSequenceClassification"
    import models.ngram_model as source

    assert (out / "ngram_model.py").read_text(encoding="utf-8") == Path(source.__file__).read_text(encoding="utf-8")
    assert summary["ngrams"]["features"] == config["ngram_features"] > 0
    assert summary["thresholds"] == json.loads((out / "dozor.json").read_text(encoding="utf-8"))["thresholds"]

    clf = TextClassifier.load(out)
    assert isinstance(clf.model, BertNgramForSequenceClassification)
    tokenizer = clf.tokenizer
    assert tokenizer.cls_token_id not in config["ngram_special_ids"] and tokenizer.sep_token_id not in config["ngram_special_ids"]
    assert tokenizer.pad_token_id in config["ngram_special_ids"]
    texts = ["Когда починят дорогу на Садовой?", "Заткнись, дебил, с Садовой", "Спасибо за ремонт на Садовой!"]
    ours = clf.predict(texts)
    assert ours[1]["toxic"] > ours[2]["toxic"]
    # the naive way of the benchmark (a transformers pipeline) gives the same probabilities
    pipe = pipeline("text-classification", model=clf.model, tokenizer=clf.tokenizer, top_k=None,
                    function_to_apply="sigmoid")
    for text, scores, answer in zip(texts, ours, pipe(texts)):
        theirs = {d["label"]: d["score"] for d in answer}
        for label, p in scores.items():
            assert math.isclose(theirs[label], p, abs_tol=1e-5), (text, label)
    # int8 quantisation leaves the n-gram part alone and still runs
    assert len(TextClassifier.load(out, quantize="int8").predict(texts)) == 3


def test_add_ngrams_to_a_checkpoint_and_fine_tune_it(data_dir, trained, tmp_path):  # noqa: F811
    import csv
    import random

    out = tmp_path / "with-ngrams"
    summary = add_ngrams_to_checkpoint(tiny_config(data_dir), trained, out)
    assert summary["ngrams"]["order"] == 3
    assert set(summary["thresholds"]) == {"question", "negative", "toxic", "positive"}
    with pytest.raises(SystemExit, match="already has an n-gram part"):
        add_ngrams_to_checkpoint(tiny_config(data_dir), out, tmp_path / "again")

    csv_path = tmp_path / "mine.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows((t, "question") for t in _rows(QUESTIONS, 30, random.Random(2)))
        writer.writerows((t, "none") for t in _rows(["На {p} открылся магазин", "Был вчера на {p}"], 30, random.Random(3)))
    before = TextClassifier.load(out).model.ngram_weight.detach().clone()
    fine_tune(out, csv_path, tmp_path / "tuned", epochs=1, learning_rate=3e-3, threads=1)
    tuned = TextClassifier.load(tmp_path / "tuned").model
    assert isinstance(tuned, BertNgramForSequenceClassification)
    assert not torch.equal(tuned.ngram_weight.detach(), before)  # fine-tuning trains the n-gram weights too


def test_fit_ngrams_skips_labels_without_both_classes(data_dir, trained):  # noqa: F811
    from transformers import AutoTokenizer

    corpus = build_corpus(data_dir, seed=13)
    tokenizer = AutoTokenizer.from_pretrained(str(trained))
    only_toxic = [e for e in corpus.train if e.targets.get("toxic") == 1]
    fit = fit_ngrams(tokenizer, only_toxic, ["toxic"])
    assert fit.fitted_labels == [] and not fit.weight.any()


def test_add_ngrams_to_an_int8_checkpoint_chooses_thresholds_for_the_int8_model(data_dir, trained, tmp_path):  # noqa: F811
    import shutil

    source = tmp_path / "int8"
    shutil.copytree(trained, source)
    stored = json.loads((source / "dozor.json").read_text(encoding="utf-8"))
    (source / "dozor.json").write_text(json.dumps({**stored, "quantize": "int8"}), encoding="utf-8")
    out = tmp_path / "int8-ngrams"
    summary = add_ngrams_to_checkpoint(tiny_config(data_dir), source, out)
    written = json.loads((out / "dozor.json").read_text(encoding="utf-8"))
    assert written["quantize"] == "int8"
    assert written["thresholds"] == summary["thresholds"]
    # what choosing on the int8 model as the classifier runs it gives (held-out data unused)
    assert rechoose_thresholds(tiny_config(data_dir), out, write=False)["thresholds"] == written["thresholds"]
    clf = TextClassifier.load(out)
    assert clf.quantize == "int8" and isinstance(clf.model, BertNgramForSequenceClassification)


def test_large_batches_are_scored_in_chunks_with_the_same_result(data_dir, trained, monkeypatch):  # noqa: F811
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import models.ngram_model as ngram_model
    from models.training.ngrams import to_ngram_model

    corpus = build_corpus(data_dir, seed=13)
    tokenizer = AutoTokenizer.from_pretrained(str(trained))
    plain = AutoModelForSequenceClassification.from_pretrained(str(trained))
    model = to_ngram_model(plain, fit_ngrams(tokenizer, corpus.train, ["question", "negative", "toxic", "positive"]))
    encoded = tokenizer([e.text for e in corpus.validation[:7]], padding=True, return_tensors="pt")
    whole = model.ngram_logits(encoded["input_ids"], encoded["attention_mask"]).detach()
    monkeypatch.setattr(ngram_model, "MAX_ROWS", 2)
    chunked = model.ngram_logits(encoded["input_ids"], encoded["attention_mask"]).detach()
    torch.testing.assert_close(chunked, whole)
    assert whole.abs().sum() > 0
