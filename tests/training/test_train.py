"""`train_default`, `fine_tune`, `rechoose_thresholds` and `evaluate` end to end on synthetic data.

The default recipe is trained once (the session fixture ``trained``); each test checks what it returned
or wrote.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from models.classifier import TextClassifier
from models.ngram_model import BertNgramForSequenceClassification
from models.training.config import TrainConfig
from models.training.data import build_corpus
from models.training.evaluate import evaluate
from models.training.train import fine_tune, rechoose_thresholds, train_default
from tests.training.synthetic import CLEAN, LABELS, TOXIC, every, tiny_config, write_user_csv

pytestmark = pytest.mark.slow


def test_train_default_writes_a_checkpoint_that_loads_everywhere(trained):
    from transformers import pipeline

    import models.ngram_model as source

    for name in ("config.json", "model.safetensors", "tokenizer.json", "dozor.json", "training_summary.json"):
        assert (trained.path / name).is_file(), name
    config = json.loads((trained.path / "config.json").read_text(encoding="utf-8"))
    # default.yaml's n-gram settings: order 3, [CLS]/[SEP] kept, skip-bigrams
    assert config["model_type"] == "dozor-bert-ngram" and config["ngram_order"] == 3 and config["ngram_skip"] is True
    assert trained.summary["ngrams"]["features"] == config["ngram_features"] > 0
    # the checkpoint carries its modeling code for plain transformers (trust_remote_code=True)
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "ngram_model.BertNgramForSequenceClassification"
    assert (trained.path / "ngram_model.py").read_text(encoding="utf-8") == Path(source.__file__).read_text(encoding="utf-8")
    assert trained.summary["thresholds"] == json.loads((trained.path / "dozor.json").read_text(encoding="utf-8"))["thresholds"]
    assert set(trained.summary["thresholds"]) == set(LABELS)
    assert trained.summary["history"] and trained.summary["teacher"] is None

    clf = TextClassifier.load(trained.path)
    assert isinstance(clf.model, BertNgramForSequenceClassification) and clf.multi_label
    assert clf.labels == ["negative", "positive", "question", "toxic"]
    special = config["ngram_special_ids"]
    assert clf.tokenizer.cls_token_id not in special and clf.tokenizer.pad_token_id in special
    toxic = [s["toxic"] for s in clf.predict(every(TOXIC))]
    clean = [s["toxic"] for s in clf.predict(every(CLEAN))]
    assert min(toxic) > max(clean)
    texts = ["Когда починят дорогу на Садовой?", "Заткнись, дебил, с Садовой", ""]
    ours = clf.predict(texts)
    assert len(ours) == 3 and all(0.0 <= p <= 1.0 for s in ours for p in s.values())
    # the naive way of the benchmark (a transformers pipeline) gives the same probabilities
    pipe = pipeline("text-classification", model=clf.model, tokenizer=clf.tokenizer, top_k=None,
                    function_to_apply="sigmoid")
    for text, scores, answer in zip(texts[:2], ours, pipe(texts[:2])):
        theirs = {d["label"]: d["score"] for d in answer}
        for label, p in scores.items():
            assert math.isclose(theirs[label], p, abs_tol=1e-5), (text, label)
    # int8 quantisation leaves the n-gram part alone and still runs
    assert len(TextClassifier.load(trained.path, quantize="int8").predict(texts)) == 3


def test_summary_records_the_whole_config(trained, data_dir):
    saved = json.loads((trained.path / "training_summary.json").read_text(encoding="utf-8"))
    assert saved["config"] == trained.summary["config"] == asdict(tiny_config(data_dir))
    assert TrainConfig(**saved["config"]) == tiny_config(data_dir)  # the summary's config trains the same model


def test_fine_tune_on_user_csv_trains_both_parts(trained, tmp_path):
    csv_path = write_user_csv(tmp_path / "mine.csv")
    before = TextClassifier.load(trained.path).model.ngram_weight.detach().clone()
    summary = fine_tune(trained.path, csv_path, tmp_path / "tuned", epochs=2, learning_rate=3e-3, threads=1)
    assert summary["train_examples"] + summary["validation_examples"] == 90
    assert summary["validation_examples"] == 14 and set(summary["thresholds"]) == set(LABELS)
    tuned = TextClassifier.load(tmp_path / "tuned")
    assert tuned.thresholds == pytest.approx(summary["thresholds"])
    assert isinstance(tuned.model, BertNgramForSequenceClassification)
    assert not torch.equal(tuned.model.ngram_weight.detach(), before)  # fine-tuning trains the n-gram weights too
    with pytest.raises(ValueError, match="at least 10 labelled rows"):
        (tmp_path / "few.csv").write_text("text,label\nкогда ремонт,question\n", encoding="utf-8")
        fine_tune(trained.path, tmp_path / "few.csv", tmp_path / "nothing")


def test_rechoose_thresholds_restores_what_training_chose_and_follows_the_rule(trained, data_dir, tmp_path):
    out = tmp_path / "model"
    shutil.copytree(trained.path, out)
    config = tiny_config(data_dir)
    path = out / "dozor.json"
    path.write_text(json.dumps({"thresholds": {k: 0.99 for k in LABELS}, "keep": 1}), encoding="utf-8")
    dry = rechoose_thresholds(config, out, write=False)
    assert json.loads(path.read_text(encoding="utf-8"))["thresholds"]["question"] == 0.99  # --dry-run writes nothing
    assert dry["before"]["question"] == 0.99 and dry["quantize"] == "none"
    result = rechoose_thresholds(config, out)
    stored = json.loads(path.read_text(encoding="utf-8"))
    assert stored["keep"] == 1  # other keys survive
    # the same model, data and rule give the thresholds training chose
    assert stored["thresholds"] == pytest.approx(trained.summary["thresholds"])
    assert result["thresholds"] == pytest.approx(trained.summary["thresholds"])
    marks = rechoose_thresholds(tiny_config(data_dir, questions_without_marks=True), out, write=False)
    assert marks["questions_without_marks"] and marks["validation"]["question"]["n"] != result["validation"]["question"]["n"]


def test_float16_weights_and_int8_runs_get_thresholds_for_the_model_as_run(data_dir, tmp_path):
    config = tiny_config(data_dir, epochs=2, ngram_order=0, save_dtype="float16", inference_quantize="int8")
    summary = train_default(config, tmp_path / "model")
    assert summary["run_as"]["quantize"] == "int8" and summary["run_as"]["save_dtype"] == "float16"
    assert summary["run_as"]["thresholds_in_training"].keys() == summary["thresholds"].keys()
    stored = json.loads((tmp_path / "model" / "dozor.json").read_text(encoding="utf-8"))
    assert stored["quantize"] == "int8" and stored["thresholds"] == summary["thresholds"]
    again = rechoose_thresholds(config, tmp_path / "model", write=False)  # the stored model, loaded and run int8
    assert again["quantize"] == "int8" and again["thresholds"] == pytest.approx(summary["thresholds"])
    assert json.loads((tmp_path / "model" / "config.json").read_text(encoding="utf-8"))["dtype"] == "float16"
    clf = TextClassifier.load(tmp_path / "model")
    assert clf.quantize == "int8" and any("quantized" in type(m).__module__ for m in clf.model.modules())
    assert next(TextClassifier.load(tmp_path / "model", quantize="none").model.parameters()).dtype == torch.float32
    plain = TextClassifier.load(tmp_path / "model", quantize="none")
    a, b = clf.predict(["Заткнись, дебил, с Садовой"])[0], plain.predict(["Заткнись, дебил, с Садовой"])[0]
    assert abs(a["toxic"] - b["toxic"]) < 0.05  # int8 moves probabilities a little, not the answer


def test_label_weights_and_validation_length(data_dir):
    from models.training.loop import run_training, set_seed
    from models.training.model import build_model, build_tokenizer

    corpus = build_corpus(data_dir, seed=13)
    tokenizer = build_tokenizer((e.text for e in corpus.train), vocab_size=400)
    set_seed(13)
    model = build_model(vocab_size=len(tokenizer), labels=tuple(LABELS), hidden_size=32, layers=1, heads=2,
                        intermediate_size=64, max_position=34, dropout=0.1, pad_token_id=tokenizer.pad_token_id)
    before = model.classifier.bias.detach().clone()
    cuts = []

    class RecordingTokenizer:
        pad_token_id = tokenizer.pad_token_id

        def __call__(self, texts, **kwargs):
            cuts.append(kwargs["max_length"])
            return tokenizer(texts, **kwargs)

    thresholds, report, history = run_training(
        model, RecordingTokenizer(), corpus.train, corpus.validation, LABELS, epochs=1, batch_size=16,
        learning_rate=1e-2, weight_decay=0.01, warmup_ratio=0.1, max_length=16, seed=13, time_budget_minutes=1,
        label_weights={"question": 0.0}, validation_max_length=32)
    after = model.classifier.bias.detach()
    assert after[0] == before[0]  # no loss on "question", so its output bias never moved
    assert not torch.equal(after[1:], before[1:])
    # training texts are cut at max_length, validation (thresholds) at the length the model is run with
    assert cuts == [16, 32]
    assert [h["epoch"] for h in history] == [1] and set(thresholds) == set(LABELS) and set(report) <= set(LABELS)


def test_device_is_resolved_and_a_missing_gpu_is_a_clear_error(monkeypatch):
    from models.training.loop import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="no CUDA GPU; use --device cpu"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"


def test_evaluate_writes_reports_with_baselines(trained, data_dir, tmp_path):
    report = evaluate(trained.path, tmp_path / "report", data_dir, seed=13, threads=1)
    saved = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert saved == json.loads(json.dumps(report))
    for split in report["splits"]:
        assert {"precision", "recall", "f1"} <= set(split["model"]) and "tfidf" in split
        assert 0.0 <= split["model"]["roc_auc"] <= 1.0 and 0.0 <= split["tfidf"]["roc_auc"] <= 1.0
        # a threshold chosen on the split itself can only do as well or better
        assert split["model"]["oracle_f1"] >= split["model"]["f1"] - 1e-9
        low, high = split["f1_diff_ci95"]
        assert -1.0 <= low <= high <= 1.0
    question = next(s for s in report["splits"] if s["label"] == "question")
    assert "question_rule" in question
    assert "macro_f1_3class" in next(s for s in report["splits"] if s["name"] == "rusentiment_test")["model"]
    # both question splits share one threshold: the report says where a common threshold would win
    shared = report["shared_threshold"]["question"]
    assert shared["splits"] == [s["name"] for s in report["splits"] if s["label"] == "question"] and len(shared["splits"]) == 2
    assert shared["model_threshold"] == report["thresholds"]["question"]
    assert all(0 < lo <= hi < 1 for lo, hi in shared["winning_thresholds"])
    markdown = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert all(s["name"] in markdown for s in report["splits"])


def test_evaluate_against_another_model_reports_its_f1_and_the_paired_difference(trained, plain, data_dir, tmp_path):
    itself = evaluate(trained.path, tmp_path / "self", data_dir, seed=13, baselines=False, threads=1,
                      against=trained.path)
    for split in itself["splits"]:  # the same model: its F1, and a difference of exactly zero
        assert split["against"]["f1"] == split["model"]["f1"] and split["against"]["f1_diff_ci95"] == [0.0, 0.0]
        low, high = split["against"]["f1_ci95"]
        assert low <= split["model"]["f1"] <= high
    assert itself["not_worse_than_against"] and itself["within_against_f1_interval"]
    other = evaluate(trained.path, tmp_path / "other", data_dir, seed=13, baselines=False, threads=1, against=plain)
    assert any(s["against"]["f1"] != s["model"]["f1"] for s in other["splits"])
    assert "Against `" in (tmp_path / "other" / "report.md").read_text(encoding="utf-8")
