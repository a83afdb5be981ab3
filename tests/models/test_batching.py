"""The batching shared by the classifier and training (models/batching.py)."""

from __future__ import annotations

import torch

from models.batching import batch_indices, map_batches, pad


def test_batches_are_length_sorted_and_results_come_back_in_input_order():
    items = ["ccc", "a", "bbbb", "dd", "e"]
    assert list(batch_indices(5, 2, [len(x) for x in items])) == [[1, 4], [3, 0], [2]]  # stable for equal lengths
    assert list(batch_indices(5, 2)) == [[0, 1], [2, 3], [4]]  # without lengths: in order
    seen = []

    def run(chunk):
        seen.append(chunk)
        return [x.upper() for x in chunk]

    assert map_batches(items, 2, run, lengths=[len(x) for x in items]) == [x.upper() for x in items]
    assert seen == [["a", "e"], ["dd", "ccc"], ["bbbb"]]
    assert map_batches([], 4, run) == []


def test_pad_right_pads_to_the_longest():
    ids, mask = pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert ids.dtype == mask.dtype == torch.long
