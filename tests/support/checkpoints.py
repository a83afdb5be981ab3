"""Checkpoints the tests build on the fly with `save_pretrained` (nothing is downloaded).

* `build_random_checkpoint` — a tiny BERT with random weights and a character-level
  WordPiece vocabulary: exercises the real loading and inference code.
* `build_oracle_checkpoint` — a real `BertForSequenceClassification` whose weights are set
  so that it returns chosen probabilities for chosen texts (and ~0 for any other text).
  It lets broker tests predict exactly which flags must arrive while the worker still loads
  a checkpoint through AutoTokenizer / AutoModelForSequenceClassification.

How the oracle works: its tokenizer has no pre-tokenizer, so a whole text is one token of a
word-level vocabulary, and it adds no special tokens, so that token sits at position 0, which
is what BERT's pooler reads. With zero encoder layers the pooled vector is
tanh(LayerNorm(embedding)). Each text's embedding holds, per label, x and -x (mean 0) plus
an anchor pair ±s that makes the standard deviation the same for every text, so LayerNorm is
a known scaling and the logits can be solved for exactly.
"""

from __future__ import annotations

import json
import math
import string
from pathlib import Path

import torch
from tokenizers import Tokenizer, normalizers
from tokenizers.models import WordLevel, WordPiece
from tokenizers.pre_tokenizers import BertPreTokenizer
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
RUSSIAN = "абвгдеёжзийклмнопрстуфхцчшщъыьэюя"


def _labels_config(labels: list[str]) -> dict:
    return {
        "id2label": dict(enumerate(labels)),
        "label2id": {label: i for i, label in enumerate(labels)},
        "problem_type": "multi_label_classification",
    }


def build_random_checkpoint(
    path: Path, labels: tuple[str, ...] = ("question", "negative", "toxic"), seed: int = 0,
    words: tuple[str, ...] = (),
) -> Path:
    """A tiny random BERT (hidden 32, 1 layer) with a character WordPiece vocabulary, plus
    `words` as whole tokens (so that token n-gram features, e.g. a topic head's, mean words)."""
    chars = sorted(set(RUSSIAN + RUSSIAN.upper() + string.ascii_letters + string.digits
                       + string.punctuation))
    vocab = SPECIAL + list(dict.fromkeys(words)) + chars + ["##" + c for c in chars]
    tokenizer = Tokenizer(WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = BertPreTokenizer()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=128,
    )
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, **_labels_config(list(labels)),
    )
    model = BertForSequenceClassification(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


def build_oracle_checkpoint(
    path: Path,
    answers: dict[str, dict[str, float]],
    labels: tuple[str, ...] = ("question", "negative", "toxic"),
    default_probability: float = 0.001,
    thresholds: dict[str, float] | None = None,
    topics: dict[str, str] | None = None,
) -> Path:
    """A checkpoint answering `answers[text][label]` for known texts, ~0 for others; with
    `topics` (text → theme key, texts among `answers`) also a topic head naming them (any
    other text: no topic)."""
    n = len(labels)
    hidden = 2 * n + 2
    weight = 20.0  # classifier weight: logits up to ±~19 are reachable (tanh stays < 0.95)
    anchor_c = 1.0
    vocab = {"[PAD]": 0, "[UNK]": 1}
    for text in answers:
        vocab.setdefault(text.strip(), len(vocab))

    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Strip()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", model_max_length=8
    )
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=0,
        num_attention_heads=2 if hidden % 2 == 0 else 1, intermediate_size=4,
        max_position_embeddings=8, layer_norm_eps=1e-12, **_labels_config(list(labels)),
    )
    model = BertForSequenceClassification(config)

    def logit(p: float) -> float:
        # float32 rounding lands within ~1e-7 of p; aim 2e-6 above it so that a probability
        # exactly at a threshold (thresholds are inclusive) stays at or above it.
        p = min(max(p + 2e-6, 1e-6), 1 - 1e-6)
        return math.log(p / (1 - p))

    def embedding(probabilities: list[float]) -> torch.Tensor:
        # pooled_j = tanh(x_j / std) must equal logit_j / weight.
        std = math.sqrt(2 * anchor_c / hidden)
        xs = [std * math.atanh(logit(p) / weight) for p in probabilities]
        rest = anchor_c - sum(x * x for x in xs)
        if rest < 0:
            raise ValueError("oracle probabilities too extreme for the anchor")
        s = math.sqrt(rest)
        return torch.tensor(xs + [-x for x in xs] + [s, -s])

    with torch.no_grad():
        emb = model.bert.embeddings
        emb.word_embeddings.weight.zero_()
        emb.position_embeddings.weight.zero_()
        emb.token_type_embeddings.weight.zero_()
        emb.LayerNorm.weight.fill_(1.0)
        emb.LayerNorm.bias.zero_()
        default = embedding([default_probability] * n)
        emb.word_embeddings.weight[0] = default
        emb.word_embeddings.weight[1] = default
        for text, token_id in vocab.items():
            if text in ("[PAD]", "[UNK]"):
                continue
            wanted = answers.get(text) or next(v for k, v in answers.items() if k.strip() == text)
            emb.word_embeddings.weight[token_id] = embedding(
                [float(wanted.get(label, default_probability)) for label in labels]
            )
        model.bert.pooler.dense.weight.copy_(torch.eye(hidden))
        model.bert.pooler.dense.bias.zero_()
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        for j in range(n):
            model.classifier.weight[j, j] = weight
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    if thresholds:
        (path / "dozor.json").write_text(json.dumps({"thresholds": thresholds}))
    if topics:
        write_oracle_topics(path, fast, vocab, topics)
    return path


def write_oracle_topics(path: Path, tokenizer, vocab: dict[str, int], topics: dict[str, str]) -> None:
    """A topic head for the oracle's one-token texts: each listed text's token votes for its theme
    (probability ~1); other texts have no feature, so every theme scores the same and, with at
    least three themes, none reaches min_probability."""
    from models.topic_head import TopicHead, tokenizer_fingerprint

    themes = sorted(set(topics.values()) | {"other"})
    while len(themes) < 3:
        themes.append(f"unused{len(themes)}")
    ids = sorted(vocab[text.strip()] for text in topics)
    weight = torch.zeros(len(ids), len(themes))
    for text, theme in topics.items():
        weight[ids.index(vocab[text.strip()]), themes.index(theme)] = 20.0
    head = TopicHead(themes=themes, names={t: f"тема {t}" for t in themes}, keys=torch.tensor(ids),
                     idf=torch.ones(len(ids)), weight=weight, bias=torch.zeros(len(themes)),
                     vocab_size=len(vocab), order=1, special_ids=(0, 1), min_probability=0.5)
    head.save(path, tokenizer_fingerprint(tokenizer))


def answers_from_labels(
    labels: dict[str, dict[str, bool | float]], yes: float = 0.95, no: float = 0.02
) -> dict[str, dict[str, float]]:
    """Oracle answers from a fixture's labels: booleans become `yes`/`no`, numbers stay."""
    return {
        text: {
            label: (yes if value else no) if isinstance(value, bool) else float(value)
            for label, value in intended.items()
        }
        for text, intended in labels.items()
    }
