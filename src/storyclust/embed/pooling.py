"""Frequency-weighted pooling of token vectors (smooth inverse frequency, SIF).

A mean-pooled sentence vector gives "the", "de", "在" and the prompt as much say as
"Schwandorf" or "Kılıçdaroğlu". Two reports of one event share their rare words (names,
places, numbers); two reports of one *kind* of event share only the frequent ones. SIF
pooling (Arora et al., 2017, "A simple but tough-to-beat baseline for sentence
embeddings") weights each token by ``a / (a + p(token))``, which keeps the event and
damps the genre.

The token probabilities ``p`` come with the model: a Unigram (SentencePiece) tokenizer,
as in the XLM-R family that multilingual-e5 belongs to, stores the log-probability of
every piece, estimated on its multilingual training corpus. So the weights depend
neither on the batch (a night with two articles is weighted like one with ten thousand)
nor on any data shipped with storyclust. Special tokens have probability 1 and drop out.

Measured on the SemEval-2022 dev pairs with multilingual-e5-small (bench/README.md):
Pearson with the human ratings 0.771 -> 0.782 with ``a = 1e-4`` (cross-lingual pairs
0.756 -> 0.765), and the best pair-threshold F1 0.832 -> 0.846.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np

#: SIF's smoothing constant: tokens much rarer than this keep weight ~1, much more frequent ones ~a/p.
SIF_A = 1e-4


def unigram_log_probs(tokenizer_json: str) -> Optional[np.ndarray]:
    """Per-token-id log-probabilities from a ``tokenizers`` JSON dump; None unless it is a Unigram model."""
    model = json.loads(tokenizer_json).get("model", {})
    if model.get("type") != "Unigram" or not model.get("vocab"):
        return None
    scores = np.array([float(entry[1]) for entry in model["vocab"]], dtype=np.float64)
    if not (scores < 0).any():  # a Unigram model without trained scores
        return None
    return scores


def cached_unigram_log_probs(tokenizer_file: Path) -> Optional[np.ndarray]:
    """:func:`unigram_log_probs` of a tokenizer file, kept in a ``.logprobs.npy`` beside it.

    Parsing the 250k-piece vocabulary in Python costs ~0.5 s, on every run; the sidecar file
    (written once, atomically, tagged with the tokenizer file's size and mtime) loads in
    milliseconds. A folder that cannot be written only costs the parse.
    """
    stat = tokenizer_file.stat()
    sidecar = tokenizer_file.with_name(f"{tokenizer_file.name}.logprobs.npy")
    tag = np.array([stat.st_size, stat.st_mtime_ns], dtype=np.float64)
    with contextlib.suppress(OSError, ValueError):
        stored = np.load(sidecar, allow_pickle=False)
        if stored.ndim == 1 and len(stored) >= 2 and np.array_equal(stored[:2], tag):
            return stored[2:] if len(stored) > 2 else None
    scores = unigram_log_probs(tokenizer_file.read_text(encoding="utf-8"))
    tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
    with contextlib.suppress(OSError):
        with open(tmp, "wb") as fh:
            np.save(fh, np.concatenate([tag, scores if scores is not None else np.zeros(0)]), allow_pickle=False)
        os.replace(tmp, sidecar)
    with contextlib.suppress(OSError):
        tmp.unlink()
    return scores


def sif_weights(log_probs: np.ndarray, a: float = SIF_A) -> np.ndarray:
    """``a / (a + p)`` for every token id (float32)."""
    return (a / (a + np.exp(np.minimum(log_probs, 0.0)))).astype(np.float32)


def weighted_mean(tokens: np.ndarray, input_ids: np.ndarray, attention_mask: np.ndarray,
                  weights: np.ndarray) -> np.ndarray:
    """Pool (batch, seq, dim) token vectors with per-id ``weights``; padding counts for nothing."""
    w = weights[np.clip(input_ids, 0, len(weights) - 1)] * (attention_mask > 0)
    total = np.maximum(w.sum(axis=1, keepdims=True), np.finfo(np.float32).tiny)
    return np.einsum("bsd,bs->bd", tokens.astype(np.float32, copy=False), w) / total


def tokenizer_json_of(model: Any) -> Optional[str]:
    """The ``tokenizers`` JSON of a sentence-transformers model (None without a fast tokenizer)."""
    backend = getattr(getattr(model, "tokenizer", None), "backend_tokenizer", None)
    return backend.to_str() if backend is not None else None


def mean_pooling_only(model: Any) -> bool:
    """True when ``model`` (sentence-transformers) pools by a plain mean over tokens.

    SIF replaces that mean; a model trained with CLS, max or last-token pooling keeps its own.
    """
    pooling = next((m for m in model if type(m).__name__ == "Pooling"), None)
    if pooling is None:
        return False
    config = pooling.get_config_dict() if hasattr(pooling, "get_config_dict") else {}
    mode = config.get("pooling_mode") or getattr(pooling, "pooling_mode", None)
    if not config.get("include_prompt", True):  # SIF pools the prompt's tokens too
        return False
    if mode is not None:
        return mode == "mean"
    flags = {k: v for k, v in config.items() if k.startswith("pooling_mode_") and v}
    return set(flags) == {"pooling_mode_mean_tokens"}
