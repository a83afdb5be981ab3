"""Batching shared by inference (``classifier``) and training (``training``): chunks of similar length.

Texts are run in chunks of ``batch_size``; sorted by length first, each chunk pads to little more
than its own texts, and the results are written back in the caller's order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def batch_indices(count: int, batch_size: int, lengths: Sequence[int] | None = None) -> Iterator[list[int]]:
    """Index chunks of at most ``batch_size`` covering ``range(count)``: by ascending ``lengths``
    (stable, so equal lengths keep their order) when given, else in order."""
    order = sorted(range(count), key=lengths.__getitem__) if lengths is not None else list(range(count))
    for start in range(0, count, batch_size):
        yield order[start:start + batch_size]


def map_batches(items: Sequence[T], batch_size: int, run: Callable[[list[T]], Sequence[R]],
                lengths: Sequence[int] | None = None) -> list[R]:
    """``run`` on chunks of ``items`` (see ``batch_indices``); one result per item, in input order."""
    out: list[R | None] = [None] * len(items)
    for chunk in batch_indices(len(items), batch_size, lengths):
        for i, result in zip(chunk, run([items[i] for i in chunk])):
            out[i] = result
    return out  # type: ignore[return-value]


def pad(batch_ids: Sequence[Sequence[int]], pad_id: int):
    """Token id lists → (input_ids, attention_mask) long tensors, right-padded to the longest."""
    import torch

    width = max(len(x) for x in batch_ids)
    input_ids = torch.full((len(batch_ids), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch_ids), width), dtype=torch.long)
    for row, ids in enumerate(batch_ids):
        input_ids[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[row, :len(ids)] = 1
    return input_ids, attention
