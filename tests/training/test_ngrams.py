"""Fitting the n-gram part (models/training/ngrams.py) beside a BERT and adding it to a checkpoint.

The n-gram part must compute exactly what sklearn's TfidfVectorizer + LogisticRegression would
on the same token n-grams (checked against an independent implementation) and mix the two logits
as configured.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from models.classifier import TextClassifier
from models.ngram_model import BertNgramForSequenceClassification
from models.training.data import build_corpus
from models.training.ngrams import add_ngram_part, fit_ngrams, logits_parts, to_ngram_model
from models.training.train import add_ngrams_to_checkpoint, rechoose_thresholds
from tests.training.synthetic import LABELS, tiny_config

pytestmark = pytest.mark.slow


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
def test_ngram_part_is_sklearn_tfidf_with_logistic_regression(data_dir, plain, skip, boundaries):
    corpus = build_corpus(data_dir, seed=13)
    tokenizer = AutoTokenizer.from_pretrained(str(plain))
    bert = AutoModelForSequenceClassification.from_pretrained(str(plain))
    model, thresholds, report = add_ngram_part(bert, tokenizer, corpus.train, corpus.validation, LABELS,
                                               skip=skip, boundaries=boundaries)
    assert model.config.ngram_skip is skip
    assert (tokenizer.cls_token_id in model.config.ngram_special_ids) is not boundaries
    assert isinstance(model, BertNgramForSequenceClassification)
    assert report["features"] == model.ngram_keys.numel() > 0
    assert all(0.0 <= m <= 1.0 for m in model.config.ngram_mix) and set(thresholds) == set(LABELS)

    rows = [i for i, e in enumerate(corpus.train) if "toxic" in e.targets]
    texts = [t for s in corpus.held_out for t in s.texts][:40] + ["", "совсем новое слово"]
    table, expected = _independent_tfidf_lr(tokenizer, [e.text for e in corpus.train], rows,
                                            [corpus.train[i].targets["toxic"] for i in rows], texts, skip=skip,
                                            boundaries=boundaries)
    assert model.ngram_keys.tolist() == table
    _, wide = logits_parts(model, tokenizer, texts, batch_size=16)
    np.testing.assert_allclose(wide[:, LABELS.index("toxic")], expected, atol=1e-4)

    # the transformer part is the BERT, untouched, and the output mixes the two logits
    encoded = tokenizer(texts, truncation=True, max_length=256, padding=True, return_tensors="pt")
    with torch.inference_mode():
        deep = bert(**encoded).logits
        mixed = model(**encoded).logits
    mix = torch.tensor(model.config.ngram_mix)
    torch.testing.assert_close(mixed, mix * deep + (1 - mix) * torch.from_numpy(wide), atol=1e-5, rtol=1e-5)


def test_add_ngrams_to_a_checkpoint(data_dir, plain, tmp_path):
    out = tmp_path / "with-ngrams"
    summary = add_ngrams_to_checkpoint(tiny_config(data_dir, ngram_order=0), plain, out)
    assert summary["ngrams"]["order"] == 3 and summary["config"]["ngram_order"] == 3  # 0 means the default 3
    assert set(summary["thresholds"]) == set(LABELS)
    assert json.loads((out / "dozor.json").read_text(encoding="utf-8"))["thresholds"] == summary["thresholds"]
    assert isinstance(TextClassifier.load(out).model, BertNgramForSequenceClassification)
    with pytest.raises(ValueError, match="already has an n-gram part"):
        add_ngrams_to_checkpoint(tiny_config(data_dir), out, tmp_path / "again")
    with pytest.raises(ValueError, match="the config says"):
        add_ngrams_to_checkpoint(tiny_config(data_dir, labels=["toxic"]), plain, tmp_path / "other")


def test_fit_ngrams_skips_labels_without_both_classes(data_dir, plain):
    corpus = build_corpus(data_dir, seed=13)
    tokenizer = AutoTokenizer.from_pretrained(str(plain))
    only_toxic = [e for e in corpus.train if e.targets.get("toxic") == 1]
    fit = fit_ngrams(tokenizer, only_toxic, ["toxic"])
    assert fit.fitted_labels == [] and not fit.weight.any()


def test_add_ngrams_to_an_int8_checkpoint_chooses_thresholds_for_the_int8_model(data_dir, plain, tmp_path):
    source = tmp_path / "int8"
    shutil.copytree(plain, source)
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


def test_large_batches_are_scored_in_chunks_with_the_same_result(data_dir, plain, monkeypatch):
    import models.ngram_model as ngram_model

    corpus = build_corpus(data_dir, seed=13)
    tokenizer = AutoTokenizer.from_pretrained(str(plain))
    bert = AutoModelForSequenceClassification.from_pretrained(str(plain))
    model = to_ngram_model(bert, fit_ngrams(tokenizer, corpus.train, LABELS))
    encoded = tokenizer([e.text for e in corpus.validation[:7]], padding=True, return_tensors="pt")
    whole = model.ngram_logits(encoded["input_ids"], encoded["attention_mask"]).detach()
    monkeypatch.setattr(ngram_model, "MAX_ROWS", 2)
    chunked = model.ngram_logits(encoded["input_ids"], encoded["attention_mask"]).detach()
    torch.testing.assert_close(chunked, whole)
    assert whole.abs().sum() > 0


def test_sentence_labels_take_the_largest_ngram_logit_of_the_text_and_of_each_sentence(data_dir, plain, tmp_path):
    from models.training.ngrams import sentence_settings

    corpus = build_corpus(data_dir, seed=13)
    tokenizer = AutoTokenizer.from_pretrained(str(plain))
    bert = AutoModelForSequenceClassification.from_pretrained(str(plain))
    model = to_ngram_model(bert, fit_ngrams(tokenizer, corpus.train, LABELS))
    whole_model = to_ngram_model(bert, fit_ngrams(tokenizer, corpus.train, LABELS))
    labels, ends, bounds = sentence_settings(tokenizer, LABELS, ["question"])
    assert ends and labels == [LABELS.index("question")]
    model.set_sentence_labels(labels, ends, bounds)
    words = [e.text.rstrip(".!?") for e in corpus.train if "?" not in e.text and "." not in e.text][:3]
    sentences = [words[0] + "!", words[1] + "?!", words[2]]  # the tiny vocabulary has no "."
    texts = [" ".join(sentences), words[1] + "?"]

    def logits(m, batch):
        encoded = tokenizer(batch, truncation=True, max_length=256, padding=True, return_tensors="pt")
        with torch.inference_mode():
            return m.ngram_logits(encoded["input_ids"], encoded["attention_mask"])

    got, whole, alone = logits(model, texts), logits(whole_model, texts), logits(whole_model, sentences)
    q = LABELS.index("question")
    expected = max(float(whole[0, q]), *alone[:, q].tolist())
    assert float(got[0, q]) == pytest.approx(expected, abs=1e-5)
    assert expected > float(whole[0, q]) + 1e-3  # a sentence scores above the whole text: the case that matters
    others = [j for j in range(len(LABELS)) if j != q]
    torch.testing.assert_close(got[:, others], whole[:, others])  # other labels: whole text only
    torch.testing.assert_close(got[1], whole[1])  # one sentence: as before

    model.save_pretrained(tmp_path / "m")  # the setting travels with the checkpoint
    loaded = BertNgramForSequenceClassification.from_pretrained(tmp_path / "m")
    assert loaded.config.ngram_sentence_labels == labels
    torch.testing.assert_close(logits(loaded, texts), got)
