"""The topic head: what a comment is about, as one of the themes a ЦУР watches (roads, waste, …).

A model folder may hold, beside the classifier, two files written by `dozor model train-topics`:

* ``topics.json`` — the theme keys in output order with their Russian names, the rule that turns
  probabilities into a topic (``min_probability``), the features' settings and the tokenizer's
  fingerprint, and what the head scored when it was trained;
* ``topics.safetensors`` — a linear model over a token n-gram TF-IDF: the sorted n-gram keys,
  their idf, a weight per key and theme, a bias per theme.

The features are computed from the classifier's own ``input_ids`` (``models.ngram_model``'s
n-gram keys, sklearn's TfidfVectorizer weighting: sublinear tf, smooth idf, l2 norm), so the head
needs no second tokenisation and no encoder output: a few torch operations per batch. It is
tied to the tokenizer (its fingerprint is checked at load), not to the encoder's weights.

A topic is the most probable theme if its probability (softmax of the scaled linear scores)
reaches ``min_probability``; otherwise None — a comment that names no theme ("спасибо",
"позор") gets no topic rather than the largest theme.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.ngram_model import ngram_counts

log = logging.getLogger(__name__)

TOPICS_JSON = "topics.json"
TOPICS_WEIGHTS = "topics.safetensors"
FORMAT = 1


def tokenizer_fingerprint(tokenizer) -> str:
    """sha1 of the tokenizer's vocabulary (token → id): the head's keys are token ids."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return hashlib.sha1("\n".join(f"{i}\t{t}" for t, i in vocab).encode()).hexdigest()


def has_topic_head(folder: str | Path) -> bool:
    folder = Path(folder)
    return (folder / TOPICS_JSON).is_file() and (folder / TOPICS_WEIGHTS).is_file()


@dataclass
class TopicHead:
    """Theme probabilities from token ids; ``topics`` applies the ``min_probability`` rule."""

    themes: list[str]              # theme keys, in output order
    names: dict[str, str]          # theme key → Russian name
    keys: torch.Tensor             # sorted int64 n-gram keys (the feature table)
    idf: torch.Tensor              # float32 per key
    weight: torch.Tensor           # float32 [keys, themes]
    bias: torch.Tensor             # float32 [themes]
    vocab_size: int
    order: int = 1
    special_ids: tuple[int, ...] = ()
    scale: float = 1.0             # the linear scores are multiplied by this before the softmax
    min_probability: float = 0.0
    metadata: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._special = torch.tensor(list(self.special_ids), dtype=torch.long)
        if self.keys.numel() == 0:
            raise ValueError("a topic head needs at least one n-gram")
        if self.weight.shape != (self.keys.numel(), len(self.themes)):
            raise ValueError(f"weight shape {tuple(self.weight.shape)} does not match "
                             f"{self.keys.numel()} n-grams x {len(self.themes)} themes")

    # --- inference ------------------------------------------------------------------------------

    def scores(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The linear scores, (batch, themes): TF-IDF of the rows' n-grams times the weights."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        batch = input_ids.shape[0]
        row, key, counts, real = ngram_counts(input_ids, attention_mask, self.vocab_size, self.order,
                                              self._special)
        position = torch.searchsorted(self.keys, key).clamp(max=self.keys.numel() - 1)
        found = (self.keys[position] == key) & real
        values = (1.0 + torch.log(counts.float())) * self.idf[position] * found
        norms = torch.zeros(batch).index_add_(0, row, values * values).sqrt().clamp(min=1e-12)
        values = values / norms[row]
        out = torch.zeros(batch, len(self.themes))
        return out.index_add_(0, row, values.unsqueeze(1) * self.weight[position]) + self.bias

    def probabilities(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Theme probabilities, (batch, themes), each row summing to 1."""
        with torch.inference_mode():
            return torch.softmax(self.scale * self.scores(input_ids, attention_mask), dim=-1)

    def decide(self, probabilities: torch.Tensor) -> list[str | None]:
        """The most probable theme of each row, or None where it is below ``min_probability``."""
        best, index = probabilities.max(dim=-1)
        return [self.themes[i] if p >= self.min_probability else None
                for p, i in zip(best.tolist(), index.tolist())]

    def topics(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> list[str | None]:
        """The topic (theme key) of each row, or None."""
        return self.decide(self.probabilities(input_ids, attention_mask))

    # --- files ----------------------------------------------------------------------------------

    @classmethod
    def load(cls, folder: str | Path, tokenizer=None) -> TopicHead | None:
        """The head stored in ``folder``, or None when it has none.

        With ``tokenizer``, a head fitted on another tokenizer's ids is refused (logged, None):
        its keys would name other tokens. Retrain it with `dozor model train-topics`.
        """
        from safetensors.torch import load_file

        folder = Path(folder)
        if not has_topic_head(folder):
            return None
        meta = json.loads((folder / TOPICS_JSON).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{folder / TOPICS_JSON}: unknown format {meta.get('format')!r}")
        features = meta["features"]
        if tokenizer is not None and features.get("tokenizer_sha1") != tokenizer_fingerprint(tokenizer):
            log.error("%s: the topic head was fitted on another tokenizer; running without topics "
                      "(retrain it: dozor model train-topics --model %s)", folder, folder)
            return None
        tensors = load_file(str(folder / TOPICS_WEIGHTS))
        themes = meta["themes"]
        return cls(
            themes=list(themes), names=dict(themes),
            keys=tensors["keys"].long(), idf=tensors["idf"].float(),
            weight=tensors["weight"].float(), bias=tensors["bias"].float(),
            vocab_size=int(features["vocab_size"]), order=int(features["order"]),
            special_ids=tuple(int(i) for i in features["special_ids"]),
            scale=float(meta["scale"]), min_probability=float(meta["min_probability"]),
            metadata=meta,
        )

    def save(self, folder: str | Path, tokenizer_sha1: str, extra: dict[str, Any] | None = None) -> list[Path]:
        """Write ``topics.json`` and ``topics.safetensors`` into ``folder``; nothing else is touched."""
        from safetensors.torch import save_file

        folder = Path(folder)
        meta = {
            "format": FORMAT,
            "themes": {key: self.names.get(key, key) for key in self.themes},
            "min_probability": self.min_probability,
            "scale": self.scale,
            "features": {"kind": "token n-gram TF-IDF (sublinear tf, smooth idf, l2)", "order": self.order,
                         "vocab_size": self.vocab_size, "special_ids": list(self.special_ids),
                         "tokenizer_sha1": tokenizer_sha1, "n_features": int(self.keys.numel())},
            **(extra or {}),
        }
        weights = folder / TOPICS_WEIGHTS
        save_file({"keys": self.keys.contiguous(), "idf": self.idf.contiguous(),
                   "weight": self.weight.contiguous(), "bias": self.bias.contiguous()}, str(weights))
        path = folder / TOPICS_JSON
        path.write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return [path, weights]
