"""The training configuration: every field and its default come from ``default.yaml``.

``default.yaml`` is what the shipped model was trained with and the one place defaults are
written: ``TrainConfig()`` has its values, and a config file passed to ``from_yaml`` only needs
the fields it changes.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import dataclass_transform

from models.training.data import Corpus, build_corpus

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")
REPO_ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def yaml_defaults() -> dict:
    """The fields of ``default.yaml`` (read once)."""
    import yaml

    return yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8")) or {}


@dataclass_transform()
def _defaults_from_yaml(cls):
    """A dataclass whose every field defaults to its value in ``default.yaml`` (a fresh copy each time)."""
    for name in cls.__annotations__:
        setattr(cls, name, field(default_factory=functools.partial(_default_value, name)))
    return dataclass(cls)


def _default_value(name: str):
    return copy.deepcopy(yaml_defaults()[name])


@_defaults_from_yaml
class TrainConfig:
    """Everything that decides a trained model; ``default.yaml`` documents each field and gives its default."""

    data_dir: str  # relative paths are resolved from the repository root
    seed: int
    labels: list[str]
    max_rows_per_source: int | None
    question_mark_strip_share: float
    source_weights: dict[str, float]
    label_weights: dict[str, float]
    questions_without_marks: bool | str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    dropout: float
    navec_init: bool
    navec_scale: float
    navec_path: str | None
    save_dtype: str
    inference_quantize: str
    max_length: int
    batch_size: int
    epochs: int
    learning_rate: float
    weight_decay: float
    warmup_ratio: float
    time_budget_minutes: float
    threads: int
    device: str
    ngram_order: int
    ngram_boundaries: bool
    ngram_skip: bool
    ngram_c: float
    ngram_sentence_labels: list[str]
    teacher: str | None
    teacher_frozen_layers: int
    teacher_epochs: int
    teacher_learning_rate: float
    teacher_time_budget_minutes: float
    teacher_tfidf_weight: float
    distill_weight: float
    transfer_texts: bool
    teacher_cache_dir: str
    teacher_model_path: str | None

    def __post_init__(self) -> None:
        if self.teacher not in (None, "e5"):
            raise ValueError(f"unknown teacher {self.teacher!r}: use e5 or null")
        if self.save_dtype not in ("float32", "float16"):
            raise ValueError(f"save_dtype {self.save_dtype!r}: use float32 or float16")
        if self.inference_quantize not in ("none", "int8"):
            raise ValueError(f"inference_quantize {self.inference_quantize!r}: use none or int8")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"unknown device {self.device!r}: use auto, cpu or cuda")

    @classmethod
    def from_yaml(cls, path: str | Path | None = None, **overrides) -> TrainConfig:
        """The config in ``path`` (fields it leaves out keep ``default.yaml``'s values), then every
        override that is not None (command-line options that were not given are None)."""
        import yaml

        raw = yaml.safe_load(Path(path or DEFAULT_CONFIG).read_text(encoding="utf-8")) or {}
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown keys in training config {path or DEFAULT_CONFIG}: {sorted(unknown)}")
        raw.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**raw)

    def resolved_data_dir(self) -> Path:
        """``data_dir``, relative paths taken from the repository root."""
        path = Path(self.data_dir)
        return path if path.is_absolute() else REPO_ROOT / path

    def corpus(self) -> Corpus:
        """The training, validation and held-out splits this config describes."""
        return build_corpus(self.resolved_data_dir(), seed=self.seed, max_rows_per_source=self.max_rows_per_source,
                            question_mark_strip_share=self.question_mark_strip_share)
