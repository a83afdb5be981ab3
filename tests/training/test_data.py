"""The data, metrics and report helpers of training and evaluation: pure functions, no training."""

from __future__ import annotations

import pytest

from models.training.data import Example, build_corpus, read_user_csv, strip_question_marks, threshold_sets
from models.training.metrics import thresholds_on_sets


def test_corpus_keeps_held_out_texts_out_of_training(data_dir):
    corpus = build_corpus(data_dir, seed=13)
    names = {s.name for s in corpus.held_out}
    assert {"rusentiment_test", "toxic_2ch_pikabu_heldout", "questions_rubq_trec_heldout"} <= names
    held = {t.lower() for s in corpus.held_out for t in s.texts}
    assert not any(e.text.lower() in held for e in corpus.train + corpus.validation)
    # "skip" is dropped; weak question labels come from "?"
    assert all(e.text != "asdf" for e in corpus.train)
    assert any(e.targets.get("question") == 1 and "?" not in e.text for e in corpus.train)


def test_user_csv_rejects_unknown_labels(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("text,label\nпривет,spam\n", encoding="utf-8")
    with pytest.raises(ValueError, match="spam"):
        read_user_csv(path)
    path.write_text("text,label\nтупой идиот,toxic\nвсё хорошо,none\n", encoding="utf-8")
    toxic, none = read_user_csv(path)
    assert toxic.targets["toxic"] == 1 and "negative" not in toxic.targets
    assert none.targets == {"question": 0, "negative": 0, "toxic": 0, "positive": 0}


def test_user_csv_unknown_column_leaves_labels_unjudged(tmp_path):
    path = tmp_path / "feedback.csv"
    path.write_text("text,label,unknown\nспасибо большое,none,positive\nкогда ремонт,question,\n",
                    encoding="utf-8")
    thanks, question = read_user_csv(path)
    assert thanks.targets == {"question": 0, "negative": 0, "toxic": 0}
    assert question.targets["question"] == 1
    path.write_text("text,label,unknown\nспасибо,positive,positive\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown"):
        read_user_csv(path)
    path.write_text("text,label,unknown\nспасибо,none,spam\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown"):
        read_user_csv(path)


def test_question_threshold_set_is_social_media_text_without_marks():
    validation = [
        Example("Какой город стоит на Садовой?", {"question": 1, "negative": 0}, "questions"),
        Example("Когда починят дорогу?", {"question": 1, "negative": 0}, "rusentiment"),
        Example("Всё плохо", {"question": 0, "negative": 1}, "rusentiment"),
        Example("Ты дебил", {"toxic": 1}, "ru_toxic_2ch_pikabu"),
    ]
    sets = threshold_sets(validation, ["question", "negative", "toxic", "positive"], questions_without_marks=True)
    assert sets["question"] == (["Когда починят дорогу", "Всё плохо"], [1, 0])
    assert sets["negative"] == (["Какой город стоит на Садовой?", "Когда починят дорогу?", "Всё плохо"], [0, 0, 1])
    assert sets["toxic"] == (["Ты дебил"], [1]) and "positive" not in sets
    plain = threshold_sets(validation, ["question"])  # the default: every row as written
    assert plain["question"] == (["Какой город стоит на Садовой?", "Когда починят дорогу?", "Всё плохо"], [1, 1, 0])
    # both: every row as written plus a "?"-free copy of each social-media row, gold kept
    both = threshold_sets(validation, ["question", "negative"], questions_without_marks="both")
    assert both["question"] == (["Какой город стоит на Садовой?", "Когда починят дорогу?", "Всё плохо",
                                 "Когда починят дорогу", "Всё плохо"], [1, 1, 0, 1, 0])
    assert both["negative"] == sets["negative"]
    with pytest.raises(ValueError, match="false, true or both"):
        threshold_sets(validation, ["question"], questions_without_marks="sometimes")


def test_thresholds_on_sets_scores_each_text_once_and_per_label():
    sets = {"question": (["a", "b", "c", "d"], [1, 1, 0, 0]), "negative": (["a", "c"], [0, 1])}
    calls = []

    def score(texts):
        calls.append(list(texts))
        table = {"a": (0.9, 0.2), "b": (0.7, 0.5), "c": (0.3, 0.8), "d": (0.1, 0.1)}
        return {"question": [table[t][0] for t in texts], "negative": [table[t][1] for t in texts]}

    thresholds, report = thresholds_on_sets(sets, score)
    assert calls == [["a", "b", "c", "d"]]
    assert 0.3 < thresholds["question"] <= 0.7 and 0.2 < thresholds["negative"] <= 0.8
    assert report["question"]["f1"] == report["negative"]["f1"] == 1.0


def test_strip_question_marks():
    assert strip_question_marks("Когда починят?? Ответьте?") == "Когда починят Ответьте"


def test_roc_auc_counts_ordered_pairs_and_ties():
    from models.training.metrics import roc_auc

    assert roc_auc([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == 1.0
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert roc_auc([1, 0], [0.5, 0.5]) == 0.5
    # pairs (pos, neg): (0.8, 0.3) win, (0.8, 0.9) lose, (0.3, 0.3) tie, (0.3, 0.9) lose -> 1.5 / 4
    assert roc_auc([1, 0, 1, 0], [0.8, 0.3, 0.3, 0.9]) == 0.375
    assert roc_auc([1, 1], [0.2, 0.3]) is None


def test_shared_threshold_wins_needs_every_split_of_the_label_at_once():
    from models.training.evaluate import _ranges, shared_threshold_wins

    # split A (like RuBQ/TREC): the positives score high, one statement at 0.5.
    a = ([1, 1, 0, 0], [0.9, 0.8, 0.5, 0.1])
    # split B (like questions without "?"): one positive scores only 0.3.
    b = ([1, 1, 0, 0], [0.9, 0.3, 0.1, 0.05])
    grid = (0.2, 0.4, 0.6)
    # F1 at t 0.2: A 0.8 (one false positive), B 1.0; t 0.4: A 0.8, B 0.667; t 0.6: A 1.0, B 0.667
    # each split alone has a winning threshold (0.6 for A, 0.2 for B), but no threshold wins both
    assert shared_threshold_wins([a, b], [0.9, 0.9], [0.0, 0.0], grid) == []
    assert shared_threshold_wins([a], [0.9], [0.0], grid) == [0.6]
    assert shared_threshold_wins([b], [0.9], [0.0], grid) == [0.2]
    assert shared_threshold_wins([a, b], [0.7, 0.9], [0.0, 0.0], grid) == [0.2]
    assert shared_threshold_wins([a, b], [0.7, 0.6], [0.0, 0.0], grid) == [0.2, 0.4, 0.6]
    assert shared_threshold_wins([a, b], [0.75, 0.6], [0.0, 0.0], grid) == [0.2, 0.4, 0.6]
    assert shared_threshold_wins([a, b], [0.79, 0.66], [0.0, 0.0], grid) == [0.2, 0.4, 0.6]
    assert shared_threshold_wins([a, b], [0.85, 0.6], [0.0, 0.0], grid) == [0.6]
    # a required margin counts, and equal F1 is not a win
    assert shared_threshold_wins([a, b], [0.75, 0.6], [0.1, 0.0], grid) == [0.6]
    assert shared_threshold_wins([a], [0.8], [0.0], grid) == [0.6]
    assert _ranges([0.23, 0.24, 0.25, 0.4]) == [[0.23, 0.25], [0.4, 0.4]]
    assert _ranges([]) == []


def test_paired_bootstrap_interval_of_the_f1_difference():
    from models.training.evaluate import paired_bootstrap_f1_diff
    from models.training.metrics import precision_recall_f1

    gold = [1] * 100 + [0] * 300
    same = [1] * 60 + [0] * 40 + [1] * 20 + [0] * 280
    assert paired_bootstrap_f1_diff(gold, same, same) == [0.0, 0.0]  # paired: identical predictions never differ
    # the model catches 20 more positives than the baseline, the rest identical: every resample favours it
    better = [1] * 80 + [0] * 20 + [1] * 20 + [0] * 280
    low, high = paired_bootstrap_f1_diff(gold, better, same)
    point = precision_recall_f1(gold, better)["f1"] - precision_recall_f1(gold, same)["f1"]
    assert 0 < low < point < high
    assert paired_bootstrap_f1_diff(gold, same, better) == [-high, -low]  # the same draws, sign flipped
    # a model that trades recall for precision against the baseline: the interval straddles 0
    other = [1] * 70 + [0] * 30 + [1] * 31 + [0] * 269
    low, high = paired_bootstrap_f1_diff(gold, other, same)
    assert low < 0 < high
    # fixed seed: the same interval every time; a narrower level gives a narrower interval
    assert paired_bootstrap_f1_diff(gold, other, same) == [low, high]
    narrow = paired_bootstrap_f1_diff(gold, other, same, level=0.5)
    assert low < narrow[0] < narrow[1] < high


def test_bootstrap_interval_of_one_models_f1():
    from models.training.evaluate import f1_interval
    from models.training.metrics import precision_recall_f1

    gold = [1] * 100 + [0] * 300
    predicted = [1] * 60 + [0] * 40 + [1] * 20 + [0] * 280
    low, high = f1_interval(gold, predicted)
    assert low < precision_recall_f1(gold, predicted)["f1"] < high
    assert f1_interval(gold, gold) == [1.0, 1.0]  # perfect on every resample
    assert f1_interval(gold * 10, predicted * 10)[1] - f1_interval(gold * 10, predicted * 10)[0] < high - low
