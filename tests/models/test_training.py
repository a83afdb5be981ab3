"""Tiny end-to-end runs of the training code: synthetic data → train → save → load → classify.

No test here needs /work/shared/data: a few hundred synthetic rows are written in the
formats of the public datasets (RuSentiment CSV, 2ch/pikabu CSV, RuBQ JSON, TREC text).
"""

from __future__ import annotations

import csv
import json
import math
import random

import numpy as np
import pytest

from models.classifier import TextClassifier
from models.training.data import Example, build_corpus, read_user_csv, strip_question_marks, threshold_sets
from models.training.metrics import thresholds_on_sets
from models.training.evaluate import evaluate
from models.training.train import TrainConfig, fine_tune, train_default

PLACES = ["улице Ленина", "Советской", "проспекте Мира", "Садовой", "площади Победы", "набережной"]
NEGATIVE = ["Опять нет горячей воды на {p}, безобразие", "Ужасная яма на {p}, всё разбито",
            "Мусор не вывозят неделю на {p}, отвратительно", "Кошмар, на {p} снова авария, надоело"]
POSITIVE = ["Спасибо за быструю работу на {p}!", "Отличный новый парк на {p}, молодцы",
            "Благодарим за ремонт на {p}, очень красиво", "Прекрасная ёлка на {p}, спасибо"]
NEUTRAL = ["Сегодня на {p} прошло собрание жильцов", "На {p} открылся новый магазин",
           "Завтра на {p} будет ярмарка", "Автобус на {p} ходит по расписанию"]
TOXIC = ["Ты тупой идиот с {p}", "Заткнись, дебил, с {p}", "Вы там все уроды и придурки на {p}",
         "Пошёл вон, скотина с {p}"]
CLEAN = ["Хороший комментарий про {p}", "Согласен с автором насчёт {p}", "Интересная новость про {p}",
         "Был вчера на {p}, всё нормально"]
QUESTIONS = ["Когда отремонтируют дорогу на {p}?", "Подскажите, куда обращаться по поводу {p}",
             "Почему не убирают снег на {p}?", "Кто отвечает за освещение на {p}?"]


def _rows(templates: list[str], n: int, rng: random.Random) -> list[str]:
    return [rng.choice(templates).format(p=rng.choice(PLACES)) + rng.choice(["", " ", " !", " ))"]) for _ in range(n)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("data")
    (root / "rusentiment").mkdir()
    for name, n in (("rusentiment_random_posts.csv", 60), ("rusentiment_preselected_posts.csv", 20), ("rusentiment_test.csv", 15)):
        with (root / "rusentiment" / name).open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["label", "text"])
            for label, templates in (("negative", NEGATIVE), ("positive", POSITIVE), ("neutral", NEUTRAL)):
                w.writerows((label, t) for t in _rows(templates, n, rng))
            w.writerows(("neutral", t) for t in _rows(QUESTIONS, n // 2, rng))
            w.writerow(("skip", "asdf"))
    (root / "ru_toxic_2ch_pikabu").mkdir()
    with (root / "ru_toxic_2ch_pikabu" / "labeled.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["comment", "toxic"])
        w.writerows((t, "1.0") for t in _rows(TOXIC, 120, rng))
        w.writerows((t, "0.0") for t in _rows(CLEAN, 120, rng))
    (root / "rubq").mkdir()
    for name in ("RuBQ_1.0_RuBQ_1.0_test.json", "RuBQ_2.0_RuBQ_2.0_dev.json"):
        qs = [{"question_text": q} for q in sorted(set(_rows(["Какой город стоит на {p}?", "Сколько домов на {p}?"], 40, rng)))]
        (root / "rubq" / name).write_text(json.dumps(qs, ensure_ascii=False), encoding="utf-8")
    return root


def tiny_config(data_dir, **overrides) -> TrainConfig:
    values = dict(data_dir=str(data_dir), vocab_size=400, hidden_size=32, num_layers=1, num_heads=2,
                  intermediate_size=64, navec_init=False, max_length=32, batch_size=16, epochs=8,
                  learning_rate=1e-2, time_budget_minutes=1, threads=1)
    values.update(overrides)
    return TrainConfig(**values)


def test_corpus_keeps_held_out_texts_out_of_training(data_dir):
    corpus = build_corpus(data_dir, seed=13)
    names = {s.name for s in corpus.held_out}
    assert {"rusentiment_test", "toxic_2ch_pikabu_heldout", "questions_rubq_trec_heldout"} <= names
    held = {t.lower() for s in corpus.held_out for t in s.texts}
    assert not any(e.text.lower() in held for e in corpus.train + corpus.validation)
    # "skip" is dropped; weak question labels come from "?"
    assert all(e.text != "asdf" for e in corpus.train)
    assert any(e.targets.get("question") == 1 and "?" not in e.text for e in corpus.train)


def test_train_save_load_classify(data_dir, tmp_path):
    out = tmp_path / "model"
    summary = train_default(tiny_config(data_dir), out)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "dozor.json"):
        assert (out / name).is_file(), name
    thresholds = json.loads((out / "dozor.json").read_text(encoding="utf-8"))["thresholds"]
    assert set(thresholds) == {"question", "negative", "toxic", "positive"}
    assert summary["history"]

    clf = TextClassifier.load(out)
    assert clf.multi_label
    assert clf.labels == ["negative", "positive", "question", "toxic"]
    scores = clf.predict(["Заткнись, дебил, с Садовой", "Спасибо за быструю работу на набережной!", ""])
    assert len(scores) == 3 and all(0.0 <= p <= 1.0 for s in scores for p in s.values())
    assert scores[0]["toxic"] > scores[1]["toxic"]
    clf.close()


def test_fine_tune_on_user_csv(data_dir, tmp_path):
    base = tmp_path / "base"
    train_default(tiny_config(data_dir, epochs=1), base)
    rng = random.Random(1)
    csv_path = tmp_path / "mine.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows((t, "question") for t in _rows(QUESTIONS, 30, rng))
        w.writerows((t, "negative") for t in _rows(NEGATIVE, 30, rng))
        w.writerows((t, "none") for t in _rows(NEUTRAL, 30, rng))
    out = tmp_path / "tuned"
    summary = fine_tune(base, csv_path, out, epochs=2, learning_rate=3e-3, threads=1)
    assert summary["train_examples"] + summary["validation_examples"] == 90
    clf = TextClassifier.load(out)
    assert set(clf.thresholds) >= {"question", "negative", "toxic", "positive"}
    assert len(clf.predict(["Когда починят дорогу на Садовой"])) == 1


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


def test_evaluate_writes_reports_with_baselines(data_dir, tmp_path):
    model = tmp_path / "model"
    train_default(tiny_config(data_dir, epochs=1), model)
    report = evaluate(model, tmp_path / "report", data_dir, seed=13, threads=1)
    assert (tmp_path / "report" / "report.md").is_file()
    saved = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert {s["name"] for s in saved["splits"]} == {s["name"] for s in report["splits"]}
    for split in saved["splits"]:
        assert {"precision", "recall", "f1"} <= set(split["model"]) and "tfidf" in split
        assert 0.0 <= split["model"]["roc_auc"] <= 1.0 and 0.0 <= split["tfidf"]["roc_auc"] <= 1.0
        # a threshold chosen on the split itself can only do as well or better
        assert split["model"]["oracle_f1"] >= split["model"]["f1"] - 1e-9
        low, high = split["f1_diff_ci95"]
        assert -1.0 <= low <= high <= 1.0
    assert "95% bootstrap interval" in (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "Ranking, for diagnosis only" in (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    question = next(s for s in saved["splits"] if s["label"] == "question")
    assert "question_rule" in question
    assert "macro_f1_3class" in next(s for s in saved["splits"] if s["name"] == "rusentiment_test")["model"]
    # both question splits share one threshold: the report says where a common threshold would win
    shared = saved["shared_threshold"]["question"]
    assert shared["splits"] == [s["name"] for s in saved["splits"] if s["label"] == "question"] and len(shared["splits"]) == 2
    assert shared["model_threshold"] == saved["thresholds"]["question"]
    assert all(0 < lo <= hi < 1 for lo, hi in shared["winning_thresholds"])
    assert "thresholds winning on all of them" in (tmp_path / "report" / "report.md").read_text(encoding="utf-8")


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


def test_label_weights_and_validation_length(data_dir, tmp_path):
    import torch

    from models.training import modeling
    from models.training.train import run_training, set_seed

    corpus = build_corpus(data_dir, seed=13)
    tokenizer = modeling.build_tokenizer((e.text for e in corpus.train), vocab_size=400)
    set_seed(13)
    model = modeling.build_model(vocab_size=len(tokenizer), labels=("question", "negative", "toxic", "positive"),
                                 hidden_size=32, layers=1, heads=2, intermediate_size=64, max_position=34,
                                 dropout=0.1, pad_token_id=tokenizer.pad_token_id)
    before = model.classifier.bias.detach().clone()
    cuts = []

    class RecordingTokenizer:
        pad_token_id = tokenizer.pad_token_id

        def __call__(self, texts, **kwargs):
            cuts.append(kwargs["max_length"])
            return tokenizer(texts, **kwargs)

    run_training(model, RecordingTokenizer(), corpus.train, corpus.validation, ["question", "negative", "toxic", "positive"],
                 epochs=1, batch_size=16, learning_rate=1e-2, weight_decay=0.01, warmup_ratio=0.1, max_length=16,
                 seed=13, time_budget_minutes=1, label_weights={"question": 0.0}, validation_max_length=32)
    after = model.classifier.bias.detach()
    assert after[0] == before[0]  # no loss on "question", so its output bias never moved
    assert not torch.equal(after[1:], before[1:])
    # training texts are cut at max_length, validation (thresholds) at the length the model is run with
    assert cuts == [16, 32]


def test_strip_question_marks():
    assert strip_question_marks("Когда починят?? Ответьте?") == "Когда починят Ответьте"


def test_distillation_teacher_fills_labels_a_source_does_not_know(data_dir, tmp_path):
    from models.training.distill import EmbeddingCache, Teacher
    from models.training.e5_teacher import E5Teacher
    from tests.models.test_e5_teacher import write_e5_file

    e5_path = tmp_path / "tiny-e5.bin"
    write_e5_file(e5_path, seed=3)
    corpus = build_corpus(data_dir, seed=13)
    cache = EmbeddingCache(tmp_path / "cache", encoder=E5Teacher(e5_path, threads=1))
    teacher = Teacher(["question", "negative", "toxic", "positive"], cache).fit(corpus.train, corpus.validation)
    assert set(teacher.report) == {"question", "negative", "toxic", "positive"}
    sentiment_only = [e for e in corpus.train if e.source == "rusentiment"][:20]
    assert all("toxic" not in e.targets for e in sentiment_only)
    scores = teacher.predict([e.text for e in sentiment_only])
    assert not np.isnan(scores).any()  # every label gets a soft target, also those the source lacks
    toxic = [e.text for e in corpus.train if e.targets.get("toxic") == 1]
    clean = [e.text for e in corpus.train if e.targets.get("toxic") == 0]
    assert teacher.predict(toxic)[:, 2].mean() > teacher.predict(clean)[:, 2].mean() + 0.3

    from models.training.baselines import TfidfBaseline

    tfidf = TfidfBaseline(seed=13).fit(corpus.train, corpus.validation)
    teacher.with_tfidf(tfidf, 0.5, corpus.validation)
    assert all("validation_f1_ensemble" in r for r in teacher.report.values())
    assert teacher.report["toxic"]["validation_f1_ensemble"] > 0.6  # e5 heads averaged with TF-IDF

    # a second run finds every embedding on disk and needs no encoder
    reloaded = EmbeddingCache(tmp_path / "cache")
    texts = [e.text for e in corpus.train[:50]]
    np.testing.assert_allclose(reloaded(texts), cache(texts), atol=1e-3)
    assert reloaded.encoder is None


def test_train_with_teacher_writes_a_working_checkpoint(data_dir, tmp_path, capsys):
    from tests.models.test_e5_teacher import write_e5_file

    e5_path = tmp_path / "tiny-e5.bin"
    write_e5_file(e5_path, seed=3)
    config = tiny_config(data_dir, teacher="e5", teacher_model_path=str(e5_path), distill_weight=0.5, teacher_frozen_layers=1,
                         teacher_cache_dir=str(tmp_path / "cache"), teacher_tfidf_weight=0.5,
                         learning_rate=3e-3)  # at 1e-2 the distilled tiny student can sit on a plateau for 8+ epochs
    summary = train_default(config, tmp_path / "model")
    teacher = summary["teacher"]
    assert teacher["kind"] == "e5, top 1 layers fine-tuned"
    assert teacher["validation_f1_ensemble"]["toxic"] > 0.6  # e5 averaged with the TF-IDF baseline
    assert max(epoch["validation_f1"]["toxic"] for epoch in teacher["history"]) > 0.6
    assert set(teacher["held_out_f1_diagnostic"]) >= {"rusentiment_test", "toxic_2ch_pikabu_heldout"}
    clf = TextClassifier.load(tmp_path / "model")
    toxic = [s["toxic"] for s in clf.predict([t.format(p=p) for t in TOXIC for p in PLACES])]
    clean = [s["toxic"] for s in clf.predict([t.format(p=p) for t in CLEAN for p in PLACES])]
    assert min(toxic) > max(clean)  # the student learned the label, not a near-tie around 0.5
    clf.close()

    # a second run with other student settings reuses the cached teacher targets
    cached = list((tmp_path / "cache").glob("targets-*.npy"))
    assert len(cached) == 1
    config.epochs = 1
    capsys.readouterr()
    again = train_default(config, tmp_path / "model2")
    assert "teacher: soft targets from" in capsys.readouterr().out
    assert again["teacher"] == json.loads(json.dumps(teacher))
    assert list((tmp_path / "cache").glob("targets-*.npy")) == cached
    assert teacher["questions_without_marks"] is False
    config.questions_without_marks = True  # same soft targets, but the cached F1 figures used the other rule
    train_default(config, tmp_path / "model2b")
    assert "computed with questions_without_marks=False" in capsys.readouterr().out
    assert list((tmp_path / "cache").glob("targets-*.npy")) == cached
    config.questions_without_marks = False
    e5_path.write_bytes(e5_path.read_bytes())  # a changed teacher file is a new cache key
    train_default(config, tmp_path / "model3")
    assert "soft targets from" not in capsys.readouterr().out
    assert len(list((tmp_path / "cache").glob("targets-*.npy"))) == 2


def test_stripped_copies_add_question_free_texts_without_leaking_held_out_ones(data_dir):
    from models.training.train import stripped_copies

    corpus = build_corpus(data_dir, seed=13, question_mark_strip_share=0.0)
    held = next(s for s in corpus.held_out if s.name == "questions_weak_no_mark_heldout")
    leaked = held.texts[0]
    examples = list(corpus.train) + [Example("Когда включат отопление на Садовой?", {}, "transfer"),
                                     Example(leaked + " ?", {}, "transfer"),
                                     Example("Спасибо за работу!", {}, "transfer")]
    copies = stripped_copies(examples, corpus)
    texts = [e.text for e in copies]
    assert "Когда включат отопление на Садовой" in texts
    assert all("?" not in t and e.targets == {} for t, e in zip(texts, copies))
    assert leaked not in texts and leaked.lower() not in {t.lower() for t in texts}
    assert len(texts) == len(set(t.lower() for t in texts))  # one copy per wording
    with_marks = sum("?" in e.text for e in corpus.train)
    assert 0 < len(copies) <= with_marks + 1


def test_device_is_resolved_and_a_missing_gpu_is_a_clear_error(monkeypatch):
    import torch

    from models.training.train import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(SystemExit, match="no CUDA GPU; use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(SystemExit, match="unknown device 'gpu'"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"


def test_teacher_from_a_pruned_file_with_every_layer_trained(data_dir, tmp_path):
    from models.training.train import prune_teacher
    from tests.models.test_e5_teacher import write_e5_file

    full, pruned = tmp_path / "tiny-e5.bin", tmp_path / "pruned-e5.bin"
    write_e5_file(full, seed=3)
    config = tiny_config(data_dir, teacher="e5", teacher_model_path=str(full), teacher_frozen_layers=0, teacher_epochs=1,
                         teacher_cache_dir=str(tmp_path / "cache"), epochs=1, device="cpu")
    summary = prune_teacher(config, pruned)
    assert summary["mismatches"] == 0 and summary["texts"] > 500
    assert summary["kept"] <= summary["pieces"] and pruned.stat().st_size == summary["pruned_bytes"]
    config.teacher_model_path = str(pruned)
    result = train_default(config, tmp_path / "model")
    assert result["teacher"]["kind"] == "e5, top 2 layers fine-tuned"  # frozen_layers 0: all layers of the tiny e5
    assert result["teacher"]["device"] == "cpu" and result["config"]["device"] == "cpu"
    assert TextClassifier.load(tmp_path / "model").predict(["Когда починят дорогу?"])[0].keys() >= {"question", "toxic"}


def test_out_of_fold_targets_come_from_models_that_never_saw_the_row(data_dir, tmp_path, capsys):
    from models.training.baselines import TfidfBaseline
    from models.training.train import fold_rows, out_of_fold_tfidf
    from tests.models.test_e5_teacher import write_e5_file

    folds = fold_rows(10, 3, seed=13)
    assert sorted(i for f in folds for i in f) == list(range(10)) and [len(f) for f in folds] == [4, 3, 3]
    assert fold_rows(10, 3, seed=13) == folds != fold_rows(10, 3, seed=14)

    config = tiny_config(data_dir, teacher="e5", teacher_folds=2, teacher_fold_epochs=1, teacher_frozen_layers=0,
                         teacher_tfidf_weight=0.5, teacher_cache_dir=str(tmp_path / "cache"), epochs=1, device="cpu")
    corpus = build_corpus(data_dir, seed=config.seed, question_mark_strip_share=config.question_mark_strip_share)
    oof = out_of_fold_tfidf(config, corpus)
    first, second = fold_rows(len(corpus.train), 2, config.seed)
    without_first = TfidfBaseline(labels=tuple(config.labels), seed=config.seed).fit(
        [corpus.train[i] for i in second], corpus.validation)
    expected = without_first.predict_proba([corpus.train[i].text for i in first[:20]])["toxic"]
    np.testing.assert_allclose([oof["toxic"][i] for i in first[:20]], expected, atol=1e-6)
    in_sample = TfidfBaseline(labels=tuple(config.labels), seed=config.seed).fit(corpus.train, corpus.validation)
    assert not np.allclose(in_sample.predict_proba([corpus.train[i].text for i in first[:20]])["toxic"], expected, atol=1e-3)

    e5_path = tmp_path / "tiny-e5.bin"
    write_e5_file(e5_path, seed=3)
    config.teacher_model_path = str(e5_path)
    summary = train_default(config, tmp_path / "model")
    assert summary["teacher"]["out_of_fold"]["folds"] == 2
    assert len(summary["teacher"]["out_of_fold"]["histories"]) == 2
    assert "teacher fold 2/2: fitted on" in capsys.readouterr().out
    config.teacher_folds = 1  # the in-sample teacher is a different cache entry
    train_default(config, tmp_path / "model1")
    assert len(list((tmp_path / "cache").glob("targets-*.npy"))) == 2


def test_mlm_pretraining_learns_the_texts_and_updates_the_student_encoder(data_dir, tmp_path):
    from models.training import modeling
    from models.training.train import pretrain_mlm

    texts = [t.format(p=p) for t in NEGATIVE + POSITIVE + QUESTIONS for p in PLACES] * 4
    tokenizer = modeling.build_tokenizer(texts, vocab_size=300)
    model = modeling.build_model(vocab_size=len(tokenizer), labels=("question", "negative", "toxic", "positive"),
                                 hidden_size=32, layers=1, heads=2, intermediate_size=64, max_position=66,
                                 dropout=0.1, pad_token_id=tokenizer.pad_token_id)
    before = {k: v.clone() for k, v in model.bert.state_dict().items()}
    head_before = model.classifier.weight.clone()
    history = pretrain_mlm(model, tokenizer, texts, epochs=4, batch_size=16, learning_rate=3e-3, max_length=32,
                           seed=1, time_budget_minutes=1)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    # it learns to fill in the templates: well below the first epoch and below guessing (ln |vocab|)
    assert history[-1]["mlm_loss"] < 0.8 * history[0]["mlm_loss"]
    assert history[-1]["mlm_loss"] < 0.75 * math.log(len(tokenizer))
    after = model.bert.state_dict()
    assert not torch_equal(after["encoder.layer.0.attention.self.query.weight"], before["encoder.layer.0.attention.self.query.weight"])
    assert not torch_equal(after["embeddings.word_embeddings.weight"], before["embeddings.word_embeddings.weight"])
    assert torch_equal(after["pooler.dense.weight"], before["pooler.dense.weight"])  # no pooler in the MLM model
    assert torch_equal(model.classifier.weight, head_before)

    summary = train_default(tiny_config(data_dir, mlm_epochs=1, epochs=1), tmp_path / "model")
    assert len(summary["mlm_history"]) == 1 and summary["mlm_history"][0]["mlm_loss"] > 0


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_e5_student_trains_and_runs_as_stored(data_dir, tmp_path, capsys):
    """student: e5 starts from the (tiny) e5 file; float16 on disk, int8 at run time, thresholds chosen for that."""
    from tests.models.test_e5_teacher import write_e5_file

    e5 = tmp_path / "tiny-e5.bin"
    write_e5_file(e5, hidden=64, layers=3, max_pos=300, seed=5)
    config = tiny_config(data_dir, student="e5", student_e5_layers=[0, 2], teacher_model_path=str(e5), epochs=2,
                         learning_rate=1e-3, save_dtype="float16", inference_quantize="int8")
    summary = train_default(config, tmp_path / "model")
    assert "thresholds re-chosen for the model as run (float16 weights, quantize int8)" in capsys.readouterr().out
    stored = json.loads((tmp_path / "model" / "dozor.json").read_text(encoding="utf-8"))
    assert stored["quantize"] == "int8" and stored["thresholds"] == summary["thresholds"]
    assert summary["run_as"]["thresholds_in_training"].keys() == summary["thresholds"].keys()
    from models.training.train import rechoose_thresholds

    again = rechoose_thresholds(config, tmp_path / "model", write=False)  # the stored model, loaded and run int8
    assert again["quantize"] == "int8" and again["thresholds"] == pytest.approx(summary["thresholds"])
    saved = json.loads((tmp_path / "model" / "config.json").read_text(encoding="utf-8"))
    assert saved["num_hidden_layers"] == 2 and saved["hidden_size"] == 64 and saved["dtype"] == "float16"
    clf = TextClassifier.load(tmp_path / "model")
    assert clf.quantize == "int8" and any("quantized" in type(m).__module__ for m in clf.model.modules())
    plain = TextClassifier.load(tmp_path / "model", quantize="none")
    assert plain.quantize == "none" and not any("quantized" in type(m).__module__ for m in plain.model.modules())
    a, b = clf.predict(["Заткнись, дебил, с Садовой"])[0], plain.predict(["Заткнись, дебил, с Садовой"])[0]
    assert abs(a["toxic"] - b["toxic"]) < 0.05  # int8 moves probabilities a little, not the answer
    for bad in (dict(mlm_epochs=1), dict(save_dtype="bfloat16"), dict(inference_quantize="int4")):
        with pytest.raises(SystemExit):  # refused before any training time is spent
            train_default(tiny_config(data_dir, student="e5", teacher_model_path=str(e5), **bad), tmp_path / "bad")
    with pytest.raises(ValueError, match="layers among 0-2"):
        train_default(tiny_config(data_dir, student="e5", student_e5_layers=[3], teacher_model_path=str(e5)), tmp_path / "bad")


def test_rechoose_thresholds_restores_what_training_chose_and_follows_the_rule(data_dir, tmp_path):
    from models.training.train import rechoose_thresholds

    out = tmp_path / "model"
    config = tiny_config(data_dir, epochs=2)
    summary = train_default(config, out)
    path = out / "dozor.json"
    path.write_text(json.dumps({"thresholds": {k: 0.99 for k in summary["thresholds"]}, "keep": 1}), encoding="utf-8")
    dry = rechoose_thresholds(config, out, write=False)
    assert json.loads(path.read_text(encoding="utf-8"))["thresholds"]["question"] == 0.99  # --dry-run writes nothing
    assert dry["before"]["question"] == 0.99 and dry["quantize"] == "none"
    result = rechoose_thresholds(config, out)
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["keep"] == 1  # other keys survive
    # the same model, data and rule give the thresholds training chose
    assert stored["thresholds"] == pytest.approx(summary["thresholds"])
    assert result["thresholds"] == pytest.approx(summary["thresholds"])
    marks = rechoose_thresholds(tiny_config(data_dir, epochs=2, questions_without_marks=True), out, write=False)
    assert marks["questions_without_marks"] and marks["validation"]["question"]["n"] != result["validation"]["question"]["n"]


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
