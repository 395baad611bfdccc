"""Adapters on an embedder: a fitted linear map applied to every vector, saved as a folder.

An :class:`Adapter` is the map ``f(x) = normalize(s * x + (x A) B^T)`` plus a manifest (base
model id, training data SHA-256, settings, CV scores, provenance) saved as a folder
(``adapter.json`` + ``weights.npz``). :class:`AdaptedEmbedder` wraps any
:class:`~storyclust.embed.Embedder`: its ``encode`` returns ``f(base.encode(texts))`` and its
``model_id`` is the base id plus ``|adapter=<sha12>`` (12 hex digits of the SHA-256 of the
weights), so caches and state files never mix vectors of two adapters.

This module only reads, applies and writes adapters (numpy only); learning one is
:mod:`storyclust.tune`'s business, which builds on it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import tempfile
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

ADAPTER_FILE = "adapter.json"
WEIGHTS_FILE = "weights.npz"
ADAPTER_FORMAT = 1


def unit_rows(X: np.ndarray) -> np.ndarray:
    """``X`` as float32 with every row scaled to length 1 (zero rows stay zero)."""
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


def apply_map(X: np.ndarray, scale: np.ndarray, A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``normalize(scale * X + (X A) B^T)``, float32 unit rows."""
    X = np.asarray(X, dtype=np.float32)
    if X.size == 0:
        return X.reshape(len(X), len(scale)).astype(np.float32)
    Y = X * scale
    if A.shape[1]:
        Y = Y + (X @ A) @ B.T
    return unit_rows(Y)


def base_label(model_id: str) -> str:
    """The model part of a ``model_id`` (before the first ``|``): what an adapter is tied to."""
    return model_id.split("|", 1)[0]


def strip_adapter(model_id: str) -> str:
    """``model_id`` without an ``|adapter=...`` part."""
    return model_id.split("|adapter=", 1)[0]


def compatible_models(base_id: str, trained_for: str) -> bool:
    """Same model, max_tokens, prompt and pooling; the backend may differ (vectors at cosine ~0.997)."""
    def parts(mid: str) -> tuple:
        fields = strip_adapter(mid).split("|")
        return (fields[0],) + tuple(fields[2:])

    return parts(base_id) == parts(trained_for)


class AdapterMismatchError(ValueError):
    """The adapter was trained on another base model (or dimension) than the embedder's."""


@dataclass
class Adapter:
    """A fitted head with its manifest; ``sha256`` is that of the saved weights file."""

    scale: np.ndarray
    A: np.ndarray
    B: np.ndarray
    manifest: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(len(self.scale))

    @property
    def base_model_id(self) -> str:
        return str(self.manifest.get("base_model_id", ""))

    def weights_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, scale=self.scale.astype(np.float32), A=self.A.astype(np.float32), B=self.B.astype(np.float32))
        return buf.getvalue()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.weights_bytes()).hexdigest()

    def transform(self, X: np.ndarray) -> np.ndarray:
        return apply_map(X, self.scale, self.A, self.B)

    @classmethod
    def from_head(cls, head: Any, manifest: Mapping[str, Any]) -> "Adapter":
        """From a fitted :class:`storyclust.tune.PairHead` (its ``scale_``, ``A_``, ``B_``)."""
        return cls(head.scale_, head.A_, head.B_, dict(manifest))

    def save(self, folder: str | os.PathLike[str]) -> pathlib.Path:
        """Write ``adapter.json`` + ``weights.npz`` into ``folder`` (created; files replaced atomically)."""
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        weights = self.weights_bytes()
        manifest = {**self.manifest, "format": ADAPTER_FORMAT, "weights_sha256": hashlib.sha256(weights).hexdigest(),
                    "dim": self.dim, "rank": int(self.A.shape[1])}
        for name, data in ((WEIGHTS_FILE, weights),
                           (ADAPTER_FILE, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8"))):
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; an adapter is data to share
            os.replace(tmp, folder / name)
        self.manifest = manifest
        return folder


def load_adapter(folder: str | os.PathLike[str]) -> Adapter:
    """Read an adapter folder; ValueError when it is incomplete or its weights do not match the manifest."""
    folder = pathlib.Path(folder).expanduser()
    mpath, wpath = folder / ADAPTER_FILE, folder / WEIGHTS_FILE
    if not mpath.is_file() or not wpath.is_file():
        raise ValueError(f"{folder}: not an adapter folder (needs {ADAPTER_FILE} and {WEIGHTS_FILE})")
    manifest = json.loads(mpath.read_text(encoding="utf-8"))
    raw = wpath.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if manifest.get("weights_sha256") not in (None, digest):
        raise ValueError(f"{folder}: {WEIGHTS_FILE} does not match the SHA-256 in {ADAPTER_FILE}")
    with np.load(io.BytesIO(raw)) as z:
        adapter = Adapter(z["scale"].astype(np.float32), z["A"].astype(np.float32), z["B"].astype(np.float32),
                          manifest)
    if adapter.A.shape != adapter.B.shape or adapter.A.shape[0] != adapter.dim:
        raise ValueError(f"{folder}: inconsistent weight shapes")
    return adapter


class AdaptedEmbedder:
    """An :class:`~storyclust.embed.Embedder` whose vectors go through an adapter.

    ``encode`` returns ``normalize(f(base.encode(texts)))``; ``model_id`` is the base's plus
    ``|adapter=<12 hex digits of the weights' SHA-256>``. Raises :class:`AdapterMismatchError` when
    the adapter was trained for another model, max_tokens, prompt or pooling (the backend may
    differ), or for another dimension.
    """

    def __init__(self, base, adapter: Adapter) -> None:
        trained_for = adapter.base_model_id
        if not trained_for or not compatible_models(base.model_id, trained_for):
            raise AdapterMismatchError(
                f"adapter {adapter.manifest.get('name', '')!r} was trained for {trained_for or 'an unknown model'!r}, "
                f"not for {base.model_id!r}: train one for this model with `storyclust tune`")
        if adapter.dim != base.dim:
            raise AdapterMismatchError(f"adapter dimension {adapter.dim} != embedder dimension {base.dim}")
        self.base = base
        self.adapter = adapter
        self.dim = base.dim
        self.sha = adapter.sha256
        self.model_id = f"{base.model_id}|adapter={self.sha[:12]}"

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        return self.adapter.transform(self.base.encode(texts, progress=progress))

    def __getattr__(self, name: str):  # batch_size, threads...: the base's
        if name in ("base", "adapter"):
            raise AttributeError(name)
        return getattr(self.base, name)


def wrap_embedder(embedder, adapter: "str | os.PathLike[str] | Adapter | None"):
    """``embedder`` with ``adapter`` (a folder or an :class:`Adapter`) applied; unchanged for None."""
    if adapter is None:
        return embedder
    if not isinstance(adapter, Adapter):
        adapter = load_adapter(adapter)
    return AdaptedEmbedder(embedder, adapter)


__all__ = [
    "ADAPTER_FILE",
    "ADAPTER_FORMAT",
    "WEIGHTS_FILE",
    "Adapter",
    "AdaptedEmbedder",
    "AdapterMismatchError",
    "apply_map",
    "compatible_models",
    "base_label",
    "load_adapter",
    "strip_adapter",
    "unit_rows",
    "wrap_embedder",
]
