"""Where the recipe's heavy steps run: in this process (:class:`LocalEngine`) or on a Ray cluster.

The recipe (:mod:`storyclust.pipeline`) and the clusterer (:mod:`storyclust.cluster`) take an
optional ``engine=``. None (the default) is today's code path, unchanged. An engine runs two
kinds of work for them:

==========================  ==========================================================================
seam                        what runs there
==========================  ==========================================================================
:meth:`Engine.embed`        article vectors (:func:`storyclust.embed.embed_articles`): the same two
                            views, the same length-sorted batches of ``batch_size`` texts, so the
                            vectors are those of a local run (the int8 backend quantises
                            activations per batch: a batch of other texts would change them)
:meth:`Engine.map`          ``fn(*shared, task)`` for each task, results in task order: the
                            neighbour search's row blocks (:func:`storyclust.cluster.candidate_edges`)
                            and the average linkage of candidate groups
                            (:meth:`storyclust.cluster.StoryClusterer._cluster`)
:meth:`Engine.imap`         the same as a generator, in task order: ingest's file lists
                            (:func:`storyclust.ingest.ingest_paths`), each file read with the same
                            per-file limits; dedupe stays on the driver
==========================  ==========================================================================

Everything else stays on the driver: folding copies, language means, connected components
(the seams between blocks), story IDs, labels, the SQLite state and the output. Tasks return
exactly what the local loop computes, and the driver combines them in the local order, so a
Ray run gives the same partition and the same IDs as a local one (``tests/test_ray.py``).

:func:`make_engine` builds an engine from the CLI's ``--engine`` / ``--ray-address``; the
``ray`` engine lives in :mod:`storyclust.engine.ray_engine` and is the only place that imports
``ray`` (on first use, never for ``local``).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np

from ..types import Article

__all__ = ["ENGINES", "Engine", "LocalEngine", "make_engine", "length_sorted_chunks", "embedding_jobs",
           "combine_views"]

ENGINES = ("local", "ray")


class Engine(Protocol):
    """Runs the heavy steps of the recipe (see the module docstring)."""

    name: str

    def embed(self, articles: Sequence[Article], embedder, *, progress: bool = False) -> np.ndarray:
        """float32 (n, dim) unit rows: exactly :func:`storyclust.embed.embed_articles` (articles, embedder)."""
        ...

    def map(self, fn: Callable[..., Any], tasks: Sequence[Any], *, shared: Sequence[Any] = ()) -> list:
        """``[fn(*shared, task) for task in tasks]``, possibly in parallel; ``shared`` is sent once."""
        ...

    def imap(self, fn: Callable[..., Any], tasks: Sequence[Any], *, shared: Sequence[Any] = (),
             errors: bool = False):
        """:meth:`map` as a generator, in task order; ``errors``: a failed task yields its exception instead."""
        ...

    @property
    def parallelism(self) -> int:
        """How many tasks run at once (the callers cut their work into a few times this many)."""
        ...


class LocalEngine:
    """This process, one task after the other: the default code path, behind the engine seam."""

    name = "local"
    parallelism = 1

    def embed(self, articles: Sequence[Article], embedder, *, progress: bool = False) -> np.ndarray:
        from ..embed import embed_articles

        return embed_articles(articles, embedder, progress=progress)

    def map(self, fn: Callable[..., Any], tasks: Sequence[Any], *, shared: Sequence[Any] = ()) -> list:
        return [fn(*shared, task) for task in tasks]

    def imap(self, fn: Callable[..., Any], tasks: Sequence[Any], *, shared: Sequence[Any] = (),
             errors: bool = False):
        for task in tasks:
            try:
                yield fn(*shared, task)
            except Exception as exc:
                if not errors:
                    raise
                yield exc

    def for_embedder(self, factory) -> "LocalEngine":
        return self

    def close(self) -> None:
        pass


def make_engine(name: str = "local", *, address: Optional[str] = None, workers: Optional[int] = None,
                ship_model: Optional[bool] = None):
    """The engine ``--engine NAME`` asks for: None for ``local`` (today's code path), else a RayEngine.

    ``address`` is a Ray cluster (``ray://host:10001``, ``host:6379`` or ``auto``); None uses
    ``$RAY_ADDRESS``, else starts a local cluster on this machine. ``workers``: embedding actors
    (None: one per CPU of the cluster, ``$STORYCLUST_RAY_WORKERS``). ``ship_model``: send the
    converted model to the workers through Ray's object store instead of a shared path
    (None: ``$STORYCLUST_RAY_SHIP_MODEL``).
    """
    if name == "local":
        return None
    if name != "ray":
        raise ValueError(f"unknown engine {name!r}; choose one of {ENGINES}")
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ImportError("No module named 'ray'")
    from .ray_engine import RayEngine

    if workers is None and os.environ.get("STORYCLUST_RAY_WORKERS"):
        workers = int(os.environ["STORYCLUST_RAY_WORKERS"])
    if ship_model is None:
        ship_model = os.environ.get("STORYCLUST_RAY_SHIP_MODEL", "").lower() in ("1", "true", "yes")
    return RayEngine(address=address, workers=workers, ship_model=ship_model)


# -- the embedding plan, shared by every engine that cuts the work ----------------------------------


def length_sorted_chunks(texts: Sequence[str], batch_size: int,
                         lengths: Optional[Callable[[Sequence[str]], Sequence[int]]] = None) -> list[list[int]]:
    """The batches :func:`storyclust.embed.backends.encode_length_sorted` forms: indices, longest first.

    ``lengths`` is the embedder's own (tokens per text; None: characters, for embedders without
    one). An embedder given one of these chunks (``encode([texts[i] for i in chunk])``) sorts it
    the same way and encodes it as one batch, so each text is padded and (int8) quantised with
    the same neighbours as in a local run.
    """
    from ..embed.backends import length_order

    order = length_order(lengths(texts) if lengths is not None else [len(t) for t in texts])
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def embedding_jobs(articles: Sequence[Article], batch_size: int,
                   lengths: Optional[Callable[[Sequence[str]], Sequence[int]]] = None):
    """``(jobs, longer)``: each job is ``(view, rows, texts)``; ``longer`` are the rows with a lead view.

    ``view`` 0 is the whole text (every article), 1 the title + lead (the articles whose lead is
    shorter than their text), both as :func:`storyclust.embed.embed_articles` makes them, batched
    by ``lengths`` (see :func:`length_sorted_chunks`).
    """
    from ..embed import LEAD_CHARS, embedding_text

    full = [embedding_text(a) for a in articles]
    jobs = [(0, chunk, [full[i] for i in chunk]) for chunk in length_sorted_chunks(full, batch_size, lengths)]
    longer: list[int] = []
    if LEAD_CHARS > 0:
        leads = [embedding_text(a, max_chars=LEAD_CHARS) for a in articles]
        longer = [i for i, (lead, text) in enumerate(zip(leads, full)) if len(lead) < len(text)]
        lead_texts = [leads[i] for i in longer]
        jobs += [(1, chunk, [lead_texts[i] for i in chunk])
                 for chunk in length_sorted_chunks(lead_texts, batch_size, lengths)]
    return jobs, longer


def combine_views(full: np.ndarray, lead: np.ndarray, longer: Sequence[int]) -> np.ndarray:
    """The two views averaged as :func:`storyclust.embed.embed_articles` does (same float32 operations)."""
    vectors = full
    if len(longer):
        summed = vectors[longer] + lead
        vectors[longer] = summed / np.linalg.norm(summed, axis=1, keepdims=True)
    return vectors
