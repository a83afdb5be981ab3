"""`tune_in_domain`: a trained checkpoint trained further on the rows labelled by reading.

The committed ids (models/in_domain/*draw.csv) get synthetic texts that follow their labels,
so the test needs neither ../shared/data nor the real texts; the public part is the synthetic
data of tests/training.
"""

from __future__ import annotations

import json
import math

import pytest

from models.in_domain.data import SOURCE_TRAIN, SOURCE_VALIDATION, read_labels
from models.in_domain.select import DRAW, HERE, TRAIN_DRAW, read_draw
from models.training.data import QUESTION_AID_SOURCE, Example
from tests.training.synthetic import tiny_config

COMPLAINT = "третью неделю не вывозят мусор во дворе дома {n}, прошу принять меры"
QUESTION = "подскажите когда отремонтируют дорогу у дома {n} и сообщите сроки"
BOTH = "почему до сих пор нет отопления в доме {n}, когда включат"
NEUTRAL = "благодарим за новую площадку у дома {n}, всё хорошо"


def synthetic_texts() -> dict[str, str]:
    """A text for every drawn and training id, written to match its labels."""
    labels = {**read_labels(HERE / "labels.csv"), **read_labels(HERE / "train_labels.csv")}
    texts = {}
    for n, (message_id, value) in enumerate(labels.items()):
        template = {(1, 1): BOTH, (1, 0): QUESTION, (0, 1): COMPLAINT}.get((value["question"], value["negative"]), NEUTRAL)
        texts[message_id] = template.format(n=n)
    return texts


@pytest.fixture(scope="module")
def tuned(trained, data_dir, tmp_path_factory):
    from models.training.in_domain import tune_in_domain

    patch = pytest.MonkeyPatch()
    patch.setattr("models.in_domain.select.read_sources", lambda *_a, **_k: synthetic_texts())
    out = tmp_path_factory.mktemp("tuned") / "model"
    try:
        summary = tune_in_domain(tiny_config(data_dir), trained.path, out, epochs=1, public_sample=300,
                                 appeal_repeat=1, max_length=32, learning_rate=1e-2,
                                 in_domain_labels=("question",), keep_weight=0.5)
    finally:
        patch.undo()
    return out, summary


def test_the_tuned_checkpoint_learns_the_labelled_rows_and_keeps_the_recipe(tuned):
    from models.classifier import TextClassifier

    out, summary = tuned
    counts = summary["in_domain"]
    assert counts["train_rows"] == sum(d == "train" for _, d in read_draw(TRAIN_DRAW)) == 1080  # the first draw
    assert counts["draws"] == ["train"] and counts["drop_labelled"] is False
    assert counts["in_domain_validation"] == sum(h == "validation" for _, h in read_draw(DRAW))
    assert counts["public_sample"] == 300 and counts["keep_weight"] == 0.5
    stored = json.loads((out / "dozor.json").read_text(encoding="utf-8"))
    assert stored["thresholds"] == summary["thresholds"]
    classifier = TextClassifier.load(out)
    assert classifier.model.config.ngram_order == 3  # the n-gram part was fitted again
    assert summary["ngrams"]["labels"]["question"]["chosen_on"] == "in-domain validation half"
    scores = classifier.predict([COMPLAINT.format(n=9999), NEUTRAL.format(n=9999)])
    assert scores[0]["negative"] > scores[1]["negative"]  # the labelled rows were learnt


def test_starting_probabilities_cover_public_rows_only(trained):
    from models.training.in_domain import plain_bert, starting_probabilities
    from models.training.loop import score_texts

    model, tokenizer, labels = plain_bert(trained.path)
    rows = [Example("нет воды на улице Ленина", {"negative": 1}, "rusentiment"),
            Example("прошу принять меры", {"negative": 1, "question": 0, "toxic": 0}, SOURCE_TRAIN)]
    soft = starting_probabilities(model, tokenizer, rows, labels, 32)
    expected = score_texts(model, tokenizer, [rows[0].text], labels, 32)
    assert [round(float(x), 5) for x in soft[0]] == [round(expected[label][0], 5) for label in labels]
    assert all(math.isnan(float(x)) for x in soft[1])


def test_plain_bert_is_the_checkpoints_transformer(trained):
    import torch
    from transformers import AutoModelForSequenceClassification

    import models.ngram_model  # noqa: F401
    from models.training.in_domain import plain_bert

    model, tokenizer, _ = plain_bert(trained.path)
    full = AutoModelForSequenceClassification.from_pretrained(str(trained.path))
    ids = tokenizer(["когда починят дорогу"], return_tensors="pt")
    with torch.inference_mode():
        assert torch.allclose(model.eval()(**ids).logits, full.eval().bert_logits(ids["input_ids"], ids["attention_mask"]))


def test_weak_question_labels_are_dropped_from_social_rows_only():
    from models.training.in_domain import without_weak_question

    social = Example("когда?", {"question": 1, "negative": 0}, "rusentiment")
    aid = Example("кто написал войну и мир", {"question": 1}, QUESTION_AID_SOURCE)
    labelled = Example("прошу сообщить", {"question": 1, "negative": 0, "toxic": 0}, SOURCE_VALIDATION)
    assert without_weak_question(social).targets == {"negative": 0}
    assert without_weak_question(aid) is aid
    assert without_weak_question(labelled) is labelled
    mine = Example("прошу сообщить", {"question": 1, "negative": 0, "toxic": 0}, SOURCE_TRAIN)
    assert without_weak_question(mine) is mine


def test_the_corpus_takes_the_chosen_training_draws_and_can_drop_their_public_copies(data_dir, monkeypatch):
    from models.in_domain.data import train_examples
    from models.training.config import TrainConfig
    from models.training.in_domain import in_domain_corpus

    texts = synthetic_texts()
    monkeypatch.setattr("models.in_domain.select.read_sources", lambda *_a, **_k: texts)
    config = tiny_config(data_dir)
    second = next(i for i, d in read_draw(TRAIN_DRAW) if d == "train2")
    copy = Example(texts[second].upper() + "?", {"question": 1}, "rusentiment")  # a public copy, weakly labelled
    corpus = config.corpus()
    monkeypatch.setattr(TrainConfig, "corpus", lambda self: type(corpus)(train=corpus.train + [copy],
                                                                            validation=list(corpus.validation)))

    first, rows, counts = in_domain_corpus(config)
    assert len(rows) == 1080 and copy in first.train and "public_train_removed_as_labelled" not in counts
    both, rows, counts = in_domain_corpus(config, draws=("train", "train2"), drop_labelled=True)
    assert len(rows) == 1800 and texts[second] in {e.text for e in rows}
    assert copy not in both.train and counts["public_train_removed_as_labelled"] == 1
    assert len(both.train) == len(first.train) - 1
    with pytest.raises(ValueError, match="choose from train, train2"):
        train_examples(texts, draws=("train3",))
