"""The topic head (models/topic_head.py, models/training/topics.py) on tiny models built here,
the classifier and `dozor classify` with and without it, `dozor model train-topics` end to end on
a synthetic appeals file, and the shipped head in models/default."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.classifier import TextClassifier
from models.topic_head import TOPICS_JSON, TOPICS_WEIGHTS, TopicHead, tokenizer_fingerprint
from models.training.topics import fit_topic_head, ngram_features, per_theme, tfidf_predictions
from tests.support.checkpoints import build_random_checkpoint

REPO = Path(__file__).resolve().parents[2]
THEMES = {"roads": "Дороги", "waste": "Мусор и свалки", "lighting": "Наружное освещение"}
THEME_WORDS = {
    "roads": ["дорога", "яма", "асфальт", "ремонт", "обочина"],
    "waste": ["мусор", "контейнер", "свалка", "вывоз", "пакеты"],
    "lighting": ["фонарь", "свет", "темно", "столб", "лампа"],
}
FILLER = ["опять", "на", "улице", "уже", "неделю", "когда", "почему", "у", "дома", "нас"]
WORDS = tuple(w for words in THEME_WORDS.values() for w in words) + tuple(FILLER)


def themed_rows(per_theme_count: int = 15, seed: int = 1) -> list[tuple[str, str]]:
    """(text, theme): two or three theme words among filler words, shuffled."""
    rng = random.Random(seed)
    rows = []
    for theme, words in THEME_WORDS.items():
        for _ in range(per_theme_count):
            tokens = rng.sample(words, rng.randint(2, 3)) + rng.sample(FILLER, 3)
            rng.shuffle(tokens)
            rows.append((" ".join(tokens), theme))
    return rows


@pytest.fixture(scope="module")
def word_model(tmp_path_factory) -> Path:
    return build_random_checkpoint(tmp_path_factory.mktemp("topics") / "base", words=WORDS)


@pytest.fixture(scope="module")
def topic_model(word_model, tmp_path_factory) -> Path:
    """The word model with a topic head fitted on the themed rows, written beside it."""
    folder = tmp_path_factory.mktemp("topics") / "with-head"
    shutil.copytree(word_model, folder)
    tokenizer = TextClassifier.load(folder).tokenizer
    head, report = fit_topic_head(tokenizer, themed_rows(), THEMES)
    assert report["features"] == len(WORDS)
    head.save(folder, tokenizer_fingerprint(tokenizer))
    return folder


def test_fitted_head_names_the_theme_and_no_topic_for_what_names_none(topic_model):
    classifier = TextClassifier.load(topic_model)
    assert classifier.topic_names == THEMES
    texts = ["опять яма на дорога", "когда вывоз мусор", "у нас темно фонарь", "спасибо большое", ""]
    scores, topics = classifier.predict_with_topics(texts)
    assert topics == ["roads", "waste", "lighting", None, None]
    assert scores == classifier.predict(texts)  # the head changes no score


def test_head_scores_equal_the_training_features_times_the_weights(topic_model):
    """The torch TF-IDF of the head is the sklearn-weighted matrix the SVM was fitted on."""
    head = TopicHead.load(topic_model)
    tokenizer = TextClassifier.load(topic_model).tokenizer
    texts = [t for t, _ in themed_rows(4, seed=9)] + ["яма яма яма мусор", "незнакомые слова"]
    x, _, _ = ngram_features(tokenizer, texts, head.order, head.keys.numpy(), head.idf.numpy())
    want = x @ head.weight.numpy() + head.bias.numpy()
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    got = head.scores(encoded["input_ids"], encoded["attention_mask"]).numpy()
    assert np.allclose(got, want, atol=1e-5)


def test_min_probability_decides_between_a_theme_and_none():
    head = TopicHead(themes=["roads", "waste"], names={}, keys=torch.tensor([5]), idf=torch.ones(1),
                     weight=torch.zeros(1, 2), bias=torch.zeros(2), vocab_size=10, min_probability=0.6)
    assert head.decide(torch.tensor([[0.7, 0.3], [0.55, 0.45], [0.2, 0.8]])) == ["roads", None, "waste"]


def test_a_folder_without_topic_files_works_without_topics(tiny_model_dir):
    classifier = TextClassifier.load(tiny_model_dir)
    assert classifier.topic_head is None and classifier.topic_names == {}
    scores, topics = classifier.predict_with_topics(["Когда починят дорогу?", "Мусор"])
    assert topics == [None, None] and scores == classifier.predict(["Когда починят дорогу?", "Мусор"])


def test_a_head_fitted_on_another_tokenizer_is_refused(topic_model, tiny_model_dir, tmp_path, caplog):
    folder = tmp_path / "other"
    shutil.copytree(tiny_model_dir, folder)
    for name in (TOPICS_JSON, TOPICS_WEIGHTS):
        shutil.copy(topic_model / name, folder / name)
    with caplog.at_level(logging.ERROR, logger="models.topic_head"):
        classifier = TextClassifier.load(folder)
    assert classifier.topic_head is None and "another tokenizer" in caplog.text
    assert classifier.predict_with_topics(["мусор"])[1] == [None]


def test_two_themes_and_a_theme_without_rows(word_model):
    tokenizer = TextClassifier.load(word_model).tokenizer
    rows = [r for r in themed_rows() if r[1] != "lighting"]
    head, _ = fit_topic_head(tokenizer, rows, THEMES)
    encoded = tokenizer(["яма дорога", "мусор свалка", "фонарь свет"], padding=True, return_tensors="pt")
    probabilities = head.probabilities(encoded["input_ids"], encoded["attention_mask"])
    assert head.decide(probabilities)[:2] == ["roads", "waste"]
    assert float(probabilities[:, head.themes.index("lighting")].max()) < 1e-6  # never chosen


def test_child_process_gives_the_in_process_topics(topic_model):
    from models.child import ChildProcessClassifier

    texts = ["опять яма на дорога", "спасибо", "когда вывоз мусор"]
    local = TextClassifier.load(topic_model, threads=1)
    child = ChildProcessClassifier(path=topic_model, threads=1)
    try:
        assert child.topic_names == local.topic_names == THEMES
        got, want = child.predict_with_topics(texts), local.predict_with_topics(texts)
        assert got[1] == want[1] == ["roads", None, "waste"]
    finally:
        child.close()


def run_cli(args: list[str], stdin: str = "", model: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", **({"DOZOR_MODEL": str(model)} if model else {})}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=300)


def test_dozor_classify_prints_the_topic(topic_model, tiny_model_dir):
    result = run_cli(["classify"], "опять яма на дорога\nспасибо\n", topic_model)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["topic"] for line in result.stdout.splitlines()] == ["roads", None]
    plain = run_cli(["classify"], "опять яма на дорога\n", tiny_model_dir)
    assert json.loads(plain.stdout)["topic"] is None


def test_tfidf_reference_here_is_the_one_of_models_in_domain_topics():
    """models.training.topics re-implements the reference to get its predictions; same figures."""
    from models.in_domain.topics import tfidf_report

    rows = themed_rows(20, seed=3)
    random.Random(4).shuffle(rows)
    train, held_out = rows[:45], rows[45:]
    ours = per_theme([y for _, y in held_out], tfidf_predictions(train, held_out), list(THEMES))
    theirs = tfidf_report(train, held_out)
    assert ours["macro"]["f1"] == pytest.approx(theirs["macro avg"]["f1-score"], abs=1e-4)
    for theme in THEMES:
        assert ours[theme]["f1"] == pytest.approx(theirs[theme]["f1-score"], abs=1e-4)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_dozor_model_train_topics_writes_only_its_two_files(word_model, tmp_path):
    """The command end to end on a synthetic appeals file whose categories are real ones."""
    from models.in_domain.topics import read_topics

    _, categories = read_topics()
    category = {theme: next(c for c, t in categories.items() if t == theme) for theme in THEMES}
    data = tmp_path / "data"
    (data / "kursk_appeals").mkdir(parents=True)
    with open(data / "kursk_appeals" / "appeals.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text_html", "category", "executor", "group"])
        for i, (text, theme) in enumerate(themed_rows(15, seed=5)):
            writer.writerow([f"synthetic-{i}", f"<p>{text}</p>", category[theme], "", ""])
    model = tmp_path / "model"
    shutil.copytree(word_model, model)
    before = digests(model)
    result = run_cli(["model", "train-topics", "--model", str(model), "--data-dir", str(data),
                      "--threads", "1", "--json", str(tmp_path / "report.json")])
    assert result.returncode == 0, result.stderr
    assert "| **macro** |" in result.stdout and "TF-IDF" in result.stdout
    after = digests(model)
    assert set(after) - set(before) == {TOPICS_JSON, TOPICS_WEIGHTS}
    assert {k: after[k] for k in before} == before  # nothing else in the folder changed
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["held_out_rows"] == 9 and set(report["tfidf"]) >= set(THEMES)
    meta = json.loads((model / TOPICS_JSON).read_text(encoding="utf-8"))
    assert meta["themes"]["roads"] == "Дороги" and meta["held_out"]["rows"] == 9
    assert TextClassifier.load(model).predict_with_topics(["когда вывоз мусор"])[1] == ["waste"]
    dry = run_cli(["model", "train-topics", "--model", str(model), "--data-dir", str(data),
                   "--threads", "1", "--dry-run", "--no-baseline"])
    assert dry.returncode == 0 and "not written" in dry.stdout and digests(model) == after


# --- the shipped head ---------------------------------------------------------------------------

DEFAULT = REPO / "models" / "default"


def test_shipped_model_folder_stays_under_40_mb_and_the_head_under_8():
    total = sum(p.stat().st_size for p in DEFAULT.iterdir() if p.is_file())
    head = sum((DEFAULT / name).stat().st_size for name in (TOPICS_JSON, TOPICS_WEIGHTS))
    assert total <= 40 * 1024 * 1024 and head <= 8 * 1024 * 1024


def test_shipped_head_names_plain_complaints():
    classifier = TextClassifier.load(DEFAULT)
    assert len(classifier.topic_names) == 16
    texts = ["Третью неделю не вывозят мусор, контейнеры переполнены",
             "На нашей улице не горят фонари",
             "В квартире холодно, батареи еле тёплые",
             "Спасибо!"]
    assert classifier.predict_with_topics(texts)[1] == ["waste", "lighting", "zhkh_heat", None]
    meta = json.loads((DEFAULT / TOPICS_JSON).read_text(encoding="utf-8"))
    assert meta["held_out"]["macro_f1"] > meta["held_out"]["tfidf_macro_f1"]
