"""The two ways storyclust runs an embedding model: torch or ONNX Runtime.

Both share :func:`encode_length_sorted`: texts are sorted by their length in tokens, cut into
batches (so each batch pads to a similar length), encoded, and put back in input order. Sorting
by tokens rather than characters matters for multilingual text: 600 characters are ~100 tokens
of English and ~200 of Thai or Greek, and on the SemEval articles character-sorted batches of
the title + lead view were 26% padding against 1% when sorted by tokens (the whole text,
truncated to 256 tokens: 7.6% against 0.6%).
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .onnx_export import TOKENIZER_FILE
from .pooling import weighted_mean

logger = logging.getLogger(__name__)

#: Texts tokenized per call: bounds the tokenizer's per-call memory (its Encoding objects).
_TOKENIZE_CHUNK = 1024


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 copy of ``vectors`` with unit-length rows (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


def length_order(lengths: Sequence[int]) -> list[int]:
    """Indices longest first (ties in input order): the order batches are cut from."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def encode_length_sorted(
    items: Sequence[Any],
    encode_batch: Callable[[list[Any]], np.ndarray],
    *,
    dim: int,
    batch_size: int,
    progress: bool = False,
    lengths: Optional[Sequence[int]] = None,
) -> np.ndarray:
    """Encode ``items`` (texts, or token-id arrays) in batches of similar length; rows come back in input order.

    ``lengths``: each item's length in tokens (None: ``len(item)``). Longest items go first so
    that the peak memory of a run shows up at its start. ``progress`` shows a tqdm bar (on
    stderr) counting texts.
    """
    out = np.empty((len(items), dim), dtype=np.float32)
    if not len(items):
        return out
    order = length_order([len(x) for x in items] if lengths is None else lengths)
    from tqdm.auto import tqdm

    with tqdm(total=len(items), desc="embedding", unit="text", disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = encode_batch([items[i] for i in idx])
            bar.update(len(idx))
    return normalize_rows(out)


class TorchEmbedder:
    """sentence-transformers on torch: fp32, or with ``bf16`` matrix products in bfloat16.

    bf16 uses ``torch.autocast``: weights stay fp32 and the matrix products run in
    bfloat16 with fp32 accumulation, while LayerNorm, softmax and pooling stay fp32.
    Measured on the SemEval texts: cosine 0.99999 to fp32 (min 0.99999) at 2.6-2.8x the
    articles/s on a 2-core CPU with AMX; loading bfloat16 weights instead was slower and
    less exact.
    """

    def __init__(self, model: Any, *, model_id: str, prompt: str, batch_size: int, bf16: bool = False,
                 token_weights: Optional[np.ndarray] = None) -> None:
        self._model = model
        self._bf16 = bf16
        self._prompt = prompt
        self._batch_size = batch_size
        self._token_weights = token_weights
        self.model_id = model_id
        self.dim = int(model.get_embedding_dimension())

    def _encode_batch(self, batch: list[str]) -> np.ndarray:
        common = dict(prompt=self._prompt, batch_size=len(batch), show_progress_bar=False)
        if self._token_weights is None:
            vectors = self._model.encode(batch, convert_to_tensor=True, normalize_embeddings=False, **common)
            return vectors.float().numpy()
        rows = []
        for out in self._model.encode(batch, output_value=None, **common):  # one dict of tensors per text
            tokens = out["token_embeddings"].float().numpy()
            n = len(tokens)  # padded to the batch, or trimmed to the text, depending on the version
            rows.append(weighted_mean(tokens[None], out["input_ids"].numpy()[None, :n],
                                      out["attention_mask"].numpy()[None, :n], self._token_weights)[0])
        return np.stack(rows)

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens the model sees of each text (prompt included, after truncation): the batching order."""
        tokenizer, limit = self._model.tokenizer, self._model.max_seq_length
        out: list[int] = []
        for start in range(0, len(texts), _TOKENIZE_CHUNK):
            chunk = [self._prompt + t for t in texts[start : start + _TOKENIZE_CHUNK]]
            out.extend(len(ids) for ids in tokenizer(chunk, truncation=True, max_length=limit)["input_ids"])
        return out

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """float32 (n, dim) embeddings with unit rows."""
        import torch

        lengths = self.lengths(texts)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self._bf16 else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            return encode_length_sorted(
                texts, self._encode_batch, dim=self.dim, batch_size=self._batch_size, progress=progress,
                lengths=lengths,
            )


class OnnxEmbedder:
    """An exported model run by ONNX Runtime, tokenized by the ``tokenizers`` library."""

    def __init__(
        self,
        model_file: Path,
        meta: dict[str, Any],
        *,
        model_id: str,
        prompt: str,
        max_tokens: int,
        batch_size: int,
        threads: int,
        token_weights: Optional[np.ndarray] = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads sleep instead of spinning: no measurable speed difference in
        # A/B runs on 2 cores, and no CPU burnt waiting when other processes need it.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        tokenizer = Tokenizer.from_file(str(model_file.parent / TOKENIZER_FILE))
        tokenizer.enable_truncation(max_length=min(max_tokens, int(meta["max_seq_length"])))
        tokenizer.no_padding()  # batches are padded in numpy, after sorting by length
        self._tokenizer = tokenizer
        self._pad_id = int(meta["pad_id"])
        self._token_weights = token_weights
        self._prompt = prompt
        self._batch_size = batch_size
        self.model_id = model_id
        self.dim = int(meta["dim"])

    def _token_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's token ids (prompt included, truncated), tokenized once, in chunks."""
        out: list[np.ndarray] = []
        for start in range(0, len(texts), _TOKENIZE_CHUNK):
            chunk = [self._prompt + t for t in texts[start : start + _TOKENIZE_CHUNK]]
            out.extend(np.array(e.ids, dtype=np.int32) for e in self._tokenizer.encode_batch(chunk))
        return out

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """Tokens the model sees of each text (prompt included, after truncation): the batching order."""
        return [len(ids) for ids in self._token_ids(texts)]

    def _encode_batch(self, batch: list[np.ndarray]) -> np.ndarray:
        width = max(len(ids) for ids in batch)
        input_ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        attention_mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        sentences, tokens = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})
        if self._token_weights is None:
            return sentences
        return weighted_mean(tokens, input_ids, attention_mask, self._token_weights)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """float32 (n, dim) embeddings with unit rows."""
        ids = self._token_ids(texts)
        return encode_length_sorted(
            ids, self._encode_batch, dim=self.dim, batch_size=self._batch_size, progress=progress,
            lengths=[len(x) for x in ids],
        )
