"""Text classifier: any sequence-classification checkpoint, its labels mapped onto Dozor's.

`load / predict(batch) / close`, as in MLServer and text-embeddings-inference: turning texts
into padded tensors (`encode`) is kept apart from running the model (`forward`), gradients
are disabled once, and nothing here knows of Kafka or HTTP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as transformers_logging

import models.ngram_model  # noqa: F401  (registers the transformer + n-gram architecture with the Auto classes)
from models.batching import map_batches
from models.labels import DEFAULT_THRESHOLD, labels_reaching
from models.memory import FreedMemoryReturner
from models.topic_head import TopicHead

log = logging.getLogger(__name__)

#: The labels Dozor reasons about. A checkpoint may provide any subset.
DOZOR_LABELS = ("question", "negative", "toxic", "positive", "neutral")
#: Label names of common public checkpoints, lower-cased, mapped onto Dozor labels.
LABEL_ALIASES = {
    "neg": "negative",
    "pos": "positive",
    "neu": "neutral",
    "toxicity": "toxic",
    "insult": "toxic",
    "obscenity": "toxic",
    "threat": "toxic",
    "dangerous": "toxic",
}
#: File beside the weights with the thresholds (and optionally the label map) of the model.
DOZOR_MODEL_FILE = "dozor.json"


class ModelConfigError(ValueError):
    """The checkpoint cannot be used as it is; the message says what to configure."""


def map_labels(id2label: dict[int, str], label_map: dict[str, str] | None) -> dict[int, str]:
    """Map the checkpoint's output indices onto Dozor labels.

    `label_map` (checkpoint label name → Dozor label) wins; otherwise names equal to a Dozor
    label (any case) or a known alias map by themselves. Outputs that map to nothing are
    ignored. Raises ModelConfigError when no output maps to a Dozor label.
    """
    explicit = {k: v for k, v in (label_map or {}).items()}
    for target in explicit.values():
        if target not in DOZOR_LABELS:
            raise ModelConfigError(
                f"label map target {target!r} is not a Dozor label; use one of {DOZOR_LABELS}"
            )
    mapped: dict[int, str] = {}
    for index, name in id2label.items():
        if name in explicit:
            mapped[int(index)] = explicit[name]
            continue
        lowered = name.lower()
        if lowered in DOZOR_LABELS:
            mapped[int(index)] = lowered
        elif lowered in LABEL_ALIASES:
            mapped[int(index)] = LABEL_ALIASES[lowered]
    if not mapped:
        raise ModelConfigError(
            f"none of the model's labels {sorted(id2label.values())} is a Dozor label "
            f"{DOZOR_LABELS}; set DOZOR_LABEL_MAP, e.g. "
            f'\'{{"{next(iter(id2label.values()))}": "negative"}}\''
        )
    return mapped


QUANTIZE_MODES = ("int8",)


def quantize_model(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """Dynamic int8 quantisation of every `nn.Linear` (CPU inference only)."""
    if mode not in QUANTIZE_MODES:
        raise ModelConfigError(f"unknown quantisation {mode!r}: use one of {', '.join(QUANTIZE_MODES)}, none or auto")
    import warnings

    with warnings.catch_warnings():  # torch deprecates the eager API in favour of torchao, not installed here
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def combine_scores(
    probabilities: Sequence[float], index_to_label: dict[int, str], multi_label: bool
) -> dict[str, float]:
    """Per-output probabilities → one probability per Dozor label.

    Several outputs may map to one label (insult, obscenity, threat → toxic): with
    independent (sigmoid) outputs the label takes the largest, with a softmax their sum.
    """
    scores: dict[str, float] = {}
    for index, label in index_to_label.items():
        p = float(probabilities[index])
        if label in scores:
            scores[label] = max(scores[label], p) if multi_label else min(1.0, scores[label] + p)
        else:
            scores[label] = p
    return scores


@dataclass
class TextClassifier:
    """A loaded checkpoint with its label mapping and thresholds."""

    tokenizer: object
    model: torch.nn.Module
    index_to_label: dict[int, str]
    multi_label: bool
    thresholds: dict[str, float]
    max_length: int = 256
    batch_size: int = 64
    source: str = ""
    quantize: str = "none"  # how the linear layers run: none (float32) | int8
    topic_head: TopicHead | None = None  # the folder's topics.json + topics.safetensors, if any
    #: after every few predictions, the heap the forward passes freed goes back (models/memory.py)
    return_freed_memory: FreedMemoryReturner = field(default_factory=FreedMemoryReturner,
                                                     repr=False, compare=False)

    @classmethod
    def load(
        cls,
        path: str | Path,
        label_map: dict[str, str] | None = None,
        thresholds: dict[str, float] | None = None,
        max_length: int = 256,
        batch_size: int = 64,
        threads: int = 0,
        quantize: str | None = None,
    ) -> TextClassifier:
        """Load a checkpoint directory (or a hub id where a network exists).

        Thresholds: `dozor.json` beside the weights, overridden per label by `thresholds`;
        labels without either get 0.5. The label map from `dozor.json` is used when none
        is given. `quantize="int8"` converts the linear layers to dynamic int8 at load time
        (see bench/bench_classifier.py for what it buys), `"none"` keeps float32, and None or
        `"auto"` does what the checkpoint's `dozor.json` says (`"quantize"`; float32 if absent).
        The model always runs in float32, also when its weights are stored in float16.
        A topic head in the folder (`models.topic_head`, written by `dozor model train-topics`) is
        loaded too: `predict_with_topics` then names each text's topic.
        int8 scores depend on which texts share a batch (one activation scale per batch), so a
        replayed text may score differently; float32 scores do not.
        """
        if threads > 0:
            torch.set_num_threads(threads)
        transformers_logging.disable_progress_bar()
        source = str(path)
        local = Path(source)
        if not local.exists() and (source.startswith((".", "/")) or local.suffix):
            raise ModelConfigError(
                f"model directory {source} does not exist; set DOZOR_MODEL to a checkpoint "
                "directory (config.json, tokenizer, weights) or train one with `dozor model train`"
            )
        stored: dict = {}
        if (local / DOZOR_MODEL_FILE).is_file():
            stored = json.loads((local / DOZOR_MODEL_FILE).read_text(encoding="utf-8"))
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForSequenceClassification.from_pretrained(source, dtype=torch.float32)
        model.eval()
        if quantize in (None, "", "auto"):
            quantize = stored.get("quantize") or "none"
        if quantize != "none":
            model = quantize_model(model, quantize)
        index_to_label = map_labels(
            dict(model.config.id2label), label_map or stored.get("label_map")
        )
        multi_label = model.config.problem_type == "multi_label_classification"
        merged = {label: DEFAULT_THRESHOLD for label in sorted(set(index_to_label.values()))}
        merged.update(stored.get("thresholds", {}))
        merged.update(thresholds or {})
        topic_head = TopicHead.load(local, tokenizer) if local.is_dir() else None
        log.info("loaded classifier %s labels=%s topics=%s", source, sorted(merged),
                 len(topic_head.themes) if topic_head else "none")
        return cls(
            tokenizer=tokenizer,
            model=model,
            index_to_label=index_to_label,
            multi_label=multi_label,
            thresholds=merged,
            max_length=max_length,
            batch_size=batch_size,
            source=source,
            quantize=quantize,
            topic_head=topic_head,
        )

    @property
    def labels(self) -> list[str]:
        """The Dozor labels this model provides."""
        return sorted(set(self.index_to_label.values()))

    @property
    def topic_names(self) -> dict[str, str]:
        """Theme key → Russian name of the topic head's themes; empty without a head."""
        return {key: self.topic_head.names[key] for key in self.topic_head.themes} if self.topic_head else {}

    def encode(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Texts → padded tensors, padded to the longest text of this batch only."""
        return self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )

    def forward(self, encoded: dict[str, torch.Tensor]) -> torch.Tensor:
        """Run the model; returns per-output probabilities, shape (batch, outputs)."""
        with torch.inference_mode():
            logits = self.model(**encoded).logits
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=-1)

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Probabilities per Dozor label for each text, in input order.

        Texts are sorted by length and cut into batches of `batch_size`, so each batch pads
        to similar lengths (dynamic padding); results return in the caller's order.
        """
        return [scores for scores, _ in self._run(texts, topics=False)]

    def predict_with_topics(self, texts: Sequence[str]) -> tuple[list[dict[str, float]], list[str | None]]:
        """`predict`'s scores and, per text, its topic (a theme key of `topic_names`, or None: no
        topic head, or no theme probable enough). One pass: the head reads the same token ids."""
        rows = self._run(texts, topics=True)
        return [scores for scores, _ in rows], [topic for _, topic in rows]

    def _run(self, texts: Sequence[str], topics: bool) -> list[tuple[dict[str, float], str | None]]:
        head = self.topic_head if topics else None

        def run(chunk: list[str]) -> list[tuple[dict[str, float], str | None]]:
            encoded = self.encode([text or " " for text in chunk])
            probabilities = self.forward(encoded).tolist()
            names = (head.topics(encoded["input_ids"], encoded.get("attention_mask")) if head is not None
                     else [None] * len(chunk))
            return [(combine_scores(row, self.index_to_label, self.multi_label), name)
                    for row, name in zip(probabilities, names)]

        rows = map_batches(texts, self.batch_size, run, lengths=[len(text) for text in texts])
        self.return_freed_memory()
        return rows

    def labels_above(self, scores: dict[str, float]) -> list[str]:
        """The labels whose probability reaches their threshold."""
        return labels_reaching(scores, self.thresholds)

    def close(self) -> None:
        """Release the model (lets a worker swap models without a restart)."""
        self.model = None  # type: ignore[assignment]
        self.tokenizer = None
        self.topic_head = None
