"""The two ways storyclust runs an embedding model: torch or ONNX Runtime.

Both share :func:`encode_length_sorted`: texts are sorted by length, cut into batches
(so each batch pads to a similar length), encoded, and put back in input order.
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


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 copy of ``vectors`` with unit-length rows (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


def encode_length_sorted(
    texts: Sequence[str],
    encode_batch: Callable[[list[str]], np.ndarray],
    *,
    dim: int,
    batch_size: int,
    progress: bool = False,
) -> np.ndarray:
    """Encode ``texts`` in batches of similar length; rows come back in input order.

    Longest texts go first so that the peak memory of a run shows up at its start.
    ``progress`` shows a tqdm bar (on stderr) counting texts.
    """
    out = np.empty((len(texts), dim), dtype=np.float32)
    if not texts:
        return out
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    from tqdm.auto import tqdm

    with tqdm(total=len(texts), desc="embedding", unit="text", disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = encode_batch([texts[i] for i in idx])
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

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """float32 (n, dim) embeddings with unit rows."""
        import torch

        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if self._bf16 else contextlib.nullcontext()
        with torch.inference_mode(), autocast:
            return encode_length_sorted(
                texts, self._encode_batch, dim=self.dim, batch_size=self._batch_size, progress=progress
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
        tokenizer.enable_padding(pad_id=int(meta["pad_id"]), pad_token=str(meta["pad_token"]))
        self._tokenizer = tokenizer
        self._token_weights = token_weights
        self._prompt = prompt
        self._batch_size = batch_size
        self.model_id = model_id
        self.dim = int(meta["dim"])

    def _encode_batch(self, batch: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch([self._prompt + text for text in batch])
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        }
        sentences, tokens = self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})
        if self._token_weights is None:
            return sentences
        return weighted_mean(tokens, feed["input_ids"], feed["attention_mask"], self._token_weights)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """float32 (n, dim) embeddings with unit rows."""
        return encode_length_sorted(
            texts, self._encode_batch, dim=self.dim, batch_size=self._batch_size, progress=progress
        )
