"""The shipped default model loads with plain transformers and answers the obvious cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "default"
LABELS = {"question", "negative", "toxic", "positive"}

pytestmark = pytest.mark.skipif(not (MODEL_DIR / "model.safetensors").is_file(), reason="models/default not built")


@pytest.fixture(scope="module")
def classifier():
    from models.classifier import TextClassifier

    clf = TextClassifier.load(MODEL_DIR)
    yield clf
    clf.close()


def test_checkpoint_is_transformers_multi_label_under_40_mb():
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    import models.ngram_model  # what every Dozor entry point imports (via models.classifier)

    config = AutoConfig.from_pretrained(MODEL_DIR)  # Dozor's registered class, no trust_remote_code
    assert config.problem_type == "multi_label_classification"
    assert set(config.id2label.values()) == LABELS
    AutoTokenizer.from_pretrained(MODEL_DIR)
    model = AutoModelForSequenceClassification.from_pretrained(MODEL_DIR)
    assert type(model) is models.ngram_model.BertNgramForSequenceClassification
    # the copy of the modeling code inside the checkpoint (for plain transformers) is the current one
    assert (MODEL_DIR / "ngram_model.py").read_text(encoding="utf-8") == Path(models.ngram_model.__file__).read_text(
        encoding="utf-8"), "models/ngram_model.py changed: cp models/ngram_model.py models/default/ (see the model card)"
    assert (MODEL_DIR / "model.safetensors").stat().st_size <= 40 * 1024 * 1024
    thresholds = json.loads((MODEL_DIR / "dozor.json").read_text(encoding="utf-8"))["thresholds"]
    assert set(thresholds) == LABELS and all(0.0 < t < 1.0 for t in thresholds.values())
    assert (MODEL_DIR / "README.md").is_file()


def _labels(classifier, text: str) -> set[str]:
    return set(classifier.labels_above(classifier.predict([text])[0]))


def test_question_with_mark(classifier):
    assert "question" in _labels(classifier, "Когда отремонтируют дорогу на улице Ленина?")


def test_question_without_mark(classifier):
    assert "question" in _labels(classifier, "Подскажите куда обращаться по поводу отопления")


def test_thanks_is_not_negative(classifier):
    labels = _labels(classifier, "Спасибо за оперативную работу!")
    assert "negative" not in labels and "toxic" not in labels


def test_insult_is_toxic(classifier):
    assert "toxic" in _labels(classifier, "Вы там все тупые идиоты, уроды конченые")


COMPLAINTS = [
    "Третий день нет горячей воды, безобразие, сколько можно терпеть",
    "Опять не вывезли мусор, безобразие",
    "Дороги в ужасном состоянии, ямы повсюду, администрации всё равно",
    "Очень недовольна работой поликлиники, врача не дождаться",
    "Возмутительно, автобус снова не пришёл, люди мёрзнут на остановке",
    "Ужасно убрали снег, во дворе не пройти",
    "Сколько можно обещать, ремонт так и не начали",
    "Жалоба: в подъезде месяц не горит свет, управляющая компания не реагирует",
]


def assert_most_negative(classifier, texts: list[str], at_least: int) -> None:
    flagged = [text for text in texts if "negative" in _labels(classifier, text)]
    assert len(flagged) >= at_least, f"only {len(flagged)} of {len(texts)} complaints flagged: {flagged}"


def test_most_plain_complaints_are_negative(classifier):
    # A set, not one sentence: the hard-label model flagged 6 of these 8, the first distilled one 6, its
    # BERT part alone 7, with the plain n-gram part 6, row 49 7 (it misses "Сколько можно обещать ...",
    # which it reads as a question).
    assert_most_negative(classifier, COMPLAINTS, 6)


FORMAL_COMPLAINTS = [  # written for this test in the calm register of appeals (not from any dataset)
    "Прошу принять меры по уборке снега во дворе дома 5 по улице Садовой, третью неделю не чистят",
    "Просим восстановить освещение у подъезда №2, фонарь не работает с октября",
    "Прошу обязать управляющую компанию устранить протечку кровли над квартирой 14",
    "Довожу до Вашего сведения, что контейнерная площадка на ул. Мира переполнена, вывоз не производится",
    "Прошу организовать ремонт дорожного покрытия на участке от школы до остановки, образовались глубокие ямы",
    "Обращаюсь по вопросу отсутствия горячего водоснабжения в доме 12 с 1 ноября",
]


def test_most_formal_complaints_are_negative(classifier):
    # The register the in-domain tuning (model card, "In-domain evaluation") taught it: the model
    # before it flagged 1 of these 6.
    assert_most_negative(classifier, FORMAL_COMPLAINTS, 5)


LONG_COMPLAINT = (
    "Уважаемая администрация! Пишу уже не в первый раз. Во дворе дома 14 по улице Мира после ремонта теплотрассы "
    "осталась огромная яма. Её огородили лентой, но лента давно порвана, ночью там ничего не видно. Вчера в неё упал "
    "пожилой сосед и сломал руку. Дети играют рядом каждый день, машины объезжают по газону. Управляющая компания "
    "говорит, что это не их зона ответственности, подрядчик на звонки не отвечает. ")


@pytest.mark.parametrize("question", ["Когда засыплют яму?", "Кто будет отвечать, если пострадает ребёнок?",
                                      "Подскажите, куда ещё обращаться?"])
def test_a_question_at_the_end_of_a_long_complaint_is_not_drowned_by_it(classifier, question):
    # The question label's n-gram part also scores each sentence alone (model card, "Model"); on the
    # whole text only, these scored 0.46-0.67, against 1.0 for the question alone.
    scores = classifier.predict([LONG_COMPLAINT + question, question])
    assert scores[0]["question"] >= 0.95 and scores[1]["question"] >= 0.95
    assert "negative" in classifier.labels_above(scores[0])


def test_plain_statement_is_not_question_or_toxic(classifier):
    labels = _labels(classifier, "Сегодня в парке прошёл праздник для детей")
    assert "question" not in labels and "toxic" not in labels


def test_int8_quantised_load_keeps_the_scores_close(classifier):
    import torch

    from models.classifier import ModelConfigError, TextClassifier

    texts = ["Когда отремонтируют дорогу на улице Ленина?", "Подскажите куда обращаться по поводу отопления",
             "Спасибо за оперативную работу!", "Вы там все тупые идиоты, уроды конченые",
             "Третий день нет горячей воды, сколько можно терпеть", "Сегодня на площади прошла ярмарка"]
    int8 = TextClassifier.load(MODEL_DIR, quantize="int8")
    assert not [m for m in int8.model.modules() if type(m) is torch.nn.Linear]  # every float linear layer replaced
    assert sum("quantized" in type(m).__module__ for m in int8.model.modules()) >= 12  # 2 layers x 6 + pooler + head
    for text, want, got in zip(texts, classifier.predict(texts), int8.predict(texts)):
        for label in LABELS:
            assert got[label] == pytest.approx(want[label], abs=0.05), (text, label)
    int8.close()
    with pytest.raises(ModelConfigError, match="int8"):
        TextClassifier.load(MODEL_DIR, quantize="fp4")


def test_float32_scores_do_not_depend_on_the_batch_but_int8_scores_do(classifier):
    """A replayed event must be classified as before, whatever shares its batch.

    float32 with dynamic padding and attention masks gives a text the same scores alone or next
    to a long text. Dynamic int8 quantises activations with one scale per batch, so its scores
    move with the neighbours: the reason int8 is not the default (README, model card row 34).
    """
    from models.classifier import TextClassifier

    text = "Когда отремонтируют дорогу на улице Ленина"
    neighbour = ["Ну вы там совсем с ума сошли, это же просто невероятно, ((( " * 6]
    alone, batched = classifier.predict([text])[0], classifier.predict([text] + neighbour)[0]
    for label in LABELS:
        assert batched[label] == pytest.approx(alone[label], abs=1e-5), label
    int8 = TextClassifier.load(MODEL_DIR, quantize="int8")
    alone, batched = int8.predict([text])[0], int8.predict([text] + neighbour)[0]
    assert max(abs(batched[label] - alone[label]) for label in LABELS) > 1e-4
    int8.close()


def test_plain_transformers_without_dozor_loads_it_with_trust_remote_code(classifier, tmp_path):
    """Where Dozor is not installed, transformers alone runs the checkpoint from its own files."""
    import os
    import subprocess
    import sys

    texts = ["Когда отремонтируют дорогу на улице Ленина?", "Ты тупой идиот", "Спасибо за оперативную работу!"]
    script = (
        "import json, sys\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline\n"
        f"model = AutoModelForSequenceClassification.from_pretrained({str(MODEL_DIR)!r}, trust_remote_code=True)\n"
        "assert type(model).__module__.startswith('transformers_modules'), type(model).__module__\n"
        "assert 'models' not in sys.modules, 'Dozor was imported'\n"
        f"pipe = pipeline('text-classification', model=model, tokenizer=AutoTokenizer.from_pretrained({str(MODEL_DIR)!r}),"
        " top_k=None, function_to_apply='sigmoid')\n"
        f"print(json.dumps([{{d['label']: d['score'] for d in row}} for row in pipe({texts!r})]))\n"
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    for ours, other in zip(classifier.predict(texts), theirs):
        assert set(other) == LABELS
        for label in LABELS:
            assert abs(ours[label] - other[label]) < 1e-5, (label, ours[label], other[label])
