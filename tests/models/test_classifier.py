"""The real loading and inference code on checkpoints built here with save_pretrained."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from models.classifier import ModelConfigError, TextClassifier
from streams.classify import classify_events
from streams.events import CanonicalEvent
from tests.support.checkpoints import build_oracle_checkpoint

REPO = Path(__file__).resolve().parents[2]
ANSWERS = {
    "Когда починят дорогу на Советской?": {"question": 0.97, "negative": 0.4, "toxic": 0.01},
    "Подскажите куда обращаться по поводу отопления": {"question": 0.9},
    "Спасибо за оперативную работу!": {"question": 0.02, "negative": 0.03},
    "Вы там все бездельники и идиоты": {"negative": 0.9, "toxic": 0.95},
}


@pytest.fixture(scope="module")
def oracle_dir(tmp_path_factory) -> Path:
    return build_oracle_checkpoint(
        tmp_path_factory.mktemp("oracle") / "m", ANSWERS, thresholds={"question": 0.6}
    )


def test_random_checkpoint_loads_and_predicts_probabilities(tiny_model_dir):
    classifier = TextClassifier.load(tiny_model_dir)
    [scores] = classifier.predict(["Когда починят дорогу?"])
    assert set(scores) == {"question", "negative", "toxic"} == set(classifier.labels)
    assert all(0.0 <= p <= 1.0 for p in scores.values())
    assert classifier.predict([]) == []


def test_batches_keep_input_order_whatever_the_lengths(oracle_dir):
    texts = list(ANSWERS) * 5 + ["незнакомый текст"]
    classifier = TextClassifier.load(oracle_dir, batch_size=3)
    results = classifier.predict(texts)
    for text, scores in zip(texts, results):
        want = ANSWERS.get(text, {})
        assert scores["question"] == pytest.approx(want.get("question", 0.001), abs=1e-4), text


def test_thresholds_from_dozor_json_and_overrides(oracle_dir):
    classifier = TextClassifier.load(oracle_dir)
    assert classifier.thresholds == {"question": 0.6, "negative": 0.5, "toxic": 0.5}
    scores = classifier.predict(["Когда починят дорогу на Советской?"])[0]
    assert classifier.labels_above(scores) == ["question"]
    stricter = TextClassifier.load(oracle_dir, thresholds={"question": 0.99, "negative": 0.3})
    assert stricter.labels_above(scores) == ["negative"]


def test_label_map_renames_outputs(tmp_path):
    path = build_oracle_checkpoint(tmp_path / "m", {"плохо": {"LABEL_1": 0.9}},
                                   labels=("LABEL_0", "LABEL_1"))
    classifier = TextClassifier.load(path, label_map={"LABEL_0": "neutral", "LABEL_1": "negative"})
    assert classifier.predict(["плохо"])[0]["negative"] == pytest.approx(0.9, abs=1e-4)


def test_missing_model_directory_says_what_to_do(tmp_path):
    with pytest.raises(ModelConfigError, match="DOZOR_MODEL"):
        TextClassifier.load(tmp_path / "absent")


def test_classify_events_runs_the_model_once_for_comments_only(oracle_dir):
    calls = []
    classifier = TextClassifier.load(oracle_dir)

    def predict(texts):
        calls.append(list(texts))
        return classifier.predict(texts)

    def event(kind, action, text, i):
        return CanonicalEvent(
            event_id=f"e{i}", platform="vk", kind=kind, action=action, page_id="vk:-1",
            item_id=str(i), thread_id="1", parent_id=None, reply_to_user=None, author_id="5",
            by_page=False, text=text, created_at=1.0, url="",
        )

    events = [
        event("comment", "new", "Вы там все бездельники и идиоты", 1),
        event("post", "new", "Пост", 2),
        event("comment", "delete", "", 3),
        event("comment", "edit", "Спасибо за оперативную работу!", 4),
    ]
    results = classify_events(events, predict, classifier.labels_above)
    assert calls == [["Вы там все бездельники и идиоты", "Спасибо за оперативную работу!"]]
    assert set(results) == {"e1", "e4"}
    assert results["e1"].labels == ["negative", "toxic"] and results["e4"].labels == []


def run_cli(args, stdin: str, model: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], input=stdin, capture_output=True,
        text=True, cwd=REPO, env={"DOZOR_MODEL": str(model), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


def test_dozor_classify_round_trip_plain_lines_and_jsonl(oracle_dir, tmp_path):
    plain = "Когда починят дорогу на Советской?\n\nСпасибо за оперативную работу!\n"
    result = run_cli(["classify"], plain, oracle_dir)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["text"] for o in out] == [
        "Когда починят дорогу на Советской?", "Спасибо за оперативную работу!"]
    assert out[0]["labels"] == ["question"] and out[1]["labels"] == []
    assert out[0]["scores"]["question"] == pytest.approx(0.97, abs=1e-3)

    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"text": "Вы там все бездельники и идиоты", "id": 1},
                                ensure_ascii=False) + "\n", encoding="utf-8")
    result = run_cli(["classify", str(jsonl)], "", oracle_dir)
    assert json.loads(result.stdout)["labels"] == ["negative", "toxic"]

    # Read in chunks (sorted by length inside the classifier), written in the input's order.
    lines = ["Спасибо", "Когда починят дорогу на Советской?", "Вы там все бездельники и идиоты",
             "Спасибо за оперативную работу!", "А"]
    chunked = run_cli(["classify", "--chunk", "2"], "\n".join(lines) + "\n", oracle_dir)
    assert [json.loads(x)["text"] for x in chunked.stdout.splitlines()] == lines

    bad = run_cli(["classify"], '{"id": 1}\n', oracle_dir)
    assert bad.returncode != 0 and "text" in bad.stderr
