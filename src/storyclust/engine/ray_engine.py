"""The recipe's heavy steps on a Ray cluster (``--engine ray``): Ray Data for embedding, Ray tasks for clustering.

Connection
    :class:`RayEngine` joins the Ray cluster already running in this process (``ray.init`` called by
    the caller), else ``ray.init(address)``: ``address`` (``--ray-address``) or, when None,
    ``$RAY_ADDRESS`` (Ray reads it itself), else a new local cluster on this machine. A cluster the
    engine started is shut down by :meth:`RayEngine.close` (and at exit).

Embedding (:meth:`RayEngine.embed`)
    The driver cuts the articles into exactly the batches a local run encodes
    (:func:`storyclust.engine.embedding_jobs`: both views, length-sorted chunks of ``batch_size``),
    and each chunk becomes one row of a Ray Dataset, one row per block. ``map_batches`` runs them
    on a pool of actors (``ActorPoolStrategy``); each actor loads the embedder once, from the
    factory bound with :meth:`RayEngine.for_embedder` (an :class:`~storyclust.settings.EmbedOptions`:
    same model, backend, pooling, prompt; ``threads`` set to the actor's CPUs) and checks that its
    ``model_id`` is the driver's. Without a factory the driver's embedder object itself is shipped
    (it must pickle: fine for small embedders such as ``tests/wordhash.py``). Because every chunk
    is the batch a local run forms, even the int8 backend, which quantises activations per batch,
    gives the local vectors (measured: bench/README.md).

Model distribution
    The driver loads its embedder first, which converts the default model once
    (``<cache>/models/multilingual-e5-small``, :func:`storyclust.embed.cache.build_once`). Workers on
    the same machine, or on nodes that mount the same cache directory (NFS, a shared volume,
    ``STORYCLUST_CACHE_DIR``), find it there. With ``ship_model=True``
    (``STORYCLUST_RAY_SHIP_MODEL=1``) the driver instead puts the files its backend needs (about
    0.4 GB for onnx-int8) into Ray's object store once, and the first actor on each node writes
    them into that node's cache (atomically, under the same lock); nothing is ever downloaded.
    User models (``--model FOLDER``) need the shared path.

Ingest (:meth:`RayEngine.imap`)
    :func:`storyclust.ingest.ingest_paths` with ``engine=``: the file list is cut into contiguous
    parts, each read by one task with :func:`storyclust.ingest.parallel.read_task` (the same
    per-file size and time limits, the same rejections); the driver takes the parts in order and
    runs the near-duplicate check, as the local path does. A part whose worker dies is read again
    one file per task, and the file whose task dies ends as a ``worker_died`` rejection. The
    local watchdog for a reader stuck in C code has no Ray counterpart: the in-task SIGALRM
    limit applies, a hang in C code holds its task.

Clustering (:meth:`RayEngine.map`)
    ``fn(*shared, task)`` as Ray tasks; ``shared`` (the vectors, dates, edges) goes into the object
    store once and the tasks read it without copying. Results come back in task order, and the
    driver combines them as the local loop does (:mod:`storyclust.cluster`).

The driver alone opens the SQLite state and writes the output; workers only compute.
"""
from __future__ import annotations

import atexit
import copy
import dataclasses
import logging
import os
import pathlib
from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import combine_views, embedding_jobs

log = logging.getLogger(__name__)

__all__ = ["RayEngine"]


class RayEngine:
    """Runs embedding and clustering on a Ray cluster (see the module docstring)."""

    name = "ray"

    def __init__(self, address: Optional[str] = None, *, workers: Optional[int] = None, ship_model: bool = False,
                 factory: Any = None, cpus_per_worker: int = 1, init_kwargs: Optional[dict] = None,
                 actor_env: Optional[dict] = None) -> None:
        self.address = address
        self.workers = workers
        self.ship_model = ship_model
        self.factory = factory
        self.cpus_per_worker = cpus_per_worker
        self.init_kwargs = dict(init_kwargs or {})
        self.actor_env = dict(actor_env or {})  # environment variables of the embedding actors
        self._remote: dict[Callable, Any] = {}

    # -- connection -------------------------------------------------------------------------------
    def _ray(self):
        import ray

        if not ray.is_initialized():
            kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                          configure_logging=False)
            kwargs.update(self.init_kwargs)
            ray.init(address=self.address, **kwargs)
            log.info("ray: connected to %s (%s CPUs)", self.address or os.environ.get("RAY_ADDRESS") or "a new local "
                     "cluster", ray.cluster_resources().get("CPU"))
            atexit.register(_shutdown)
            _STARTED.append(True)
        return ray

    @property
    def parallelism(self) -> int:
        ray = self._ray()
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def close(self) -> None:
        """Shut down the Ray connection if this engine made it (a caller's ``ray.init`` stays)."""
        if _STARTED:
            _shutdown()

    def for_embedder(self, factory: Any) -> "RayEngine":
        """This engine, with actors that build their embedder from ``factory`` (``EmbedOptions``, an object with
        ``load()``, or a zero-argument callable; it must pickle)."""
        bound = copy.copy(self)
        bound.factory = factory
        return bound

    # -- embedding ---------------------------------------------------------------------------------
    def embed(self, articles: Sequence, embedder, *, progress: bool = False) -> np.ndarray:
        dim = embedder.dim
        if not len(articles):
            return np.zeros((0, dim), dtype=np.float32)
        ray = self._ray()
        import ray.data

        if not progress:
            logging.getLogger("ray.data").setLevel(logging.ERROR)  # its INFO lines and the progress-bar notice
        batch_size = (getattr(embedder, "_batch_size", None) or getattr(self.factory, "batch_size", None) or 32)
        jobs, longer = embedding_jobs(articles, int(batch_size), getattr(embedder, "lengths", None))
        factory = self.factory if self.factory is not None else embedder
        model_ref = self._shipped_model(embedder) if self.ship_model else None
        workers = self.workers or max(1, self.parallelism // self.cpus_per_worker)
        workers = max(1, min(workers, len(jobs)))
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = bool(progress)
        context.enable_operator_progress_bars = bool(progress)
        items = [{"job": j, "view": view, "rows": list(map(int, rows)), "texts": list(texts)}
                 for j, (view, rows, texts) in enumerate(jobs)]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        ds = ds.map_batches(
            _EmbedActor, batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=self.cpus_per_worker, runtime_env={"env_vars": self.actor_env} if self.actor_env else None,
            fn_constructor_kwargs=dict(factory=factory, model_id=embedder.model_id,
                                       threads=self.cpus_per_worker, model=model_ref),
        )
        views = [np.empty((len(articles), dim), np.float32), np.empty((len(longer), dim), np.float32)]
        done = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for view, row, vector in zip(batch["view"], batch["row"], batch["vector"]):
                views[int(view)][int(row)] = vector
            done += len(batch["row"])
        if done != len(articles) + len(longer):
            raise RuntimeError(f"ray embedding returned {done} vectors for {len(articles) + len(longer)} texts")
        return combine_views(views[0], views[1], longer)

    def _shipped_model(self, embedder):
        """An object-store reference to the files of the default model the embedder's backend needs."""
        from ..embed import DEFAULT_MODEL_NAME, settings_of
        from ..embed.cache import models_dir

        options = self.factory
        if not isinstance(options, _embed_options_class()) or options.model is not None:
            log.warning("ray: ship_model applies to the default model only; workers read the model from a shared path")
            return None
        settings = settings_of(embedder.model_id)
        folder = models_dir(options.cache_dir) / DEFAULT_MODEL_NAME
        files = pack_model(folder, settings.backend if settings else "onnx-int8")
        log.info("ray: shipping %s (%.0f MB) through the object store", folder,
                 sum(len(b) for b in files.values()) / 2**20)
        return self._ray().put(files)

    # -- parallel map -------------------------------------------------------------------------------
    def map(self, fn: Callable[..., Any], tasks: Sequence[Any], *, shared: Sequence[Any] = ()) -> list:
        if not len(tasks):
            return []
        ray = self._ray()
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = ray.remote(num_cpus=1)(fn)
        refs = [ray.put(value) for value in shared]
        return ray.get([remote.remote(*refs, task) for task in tasks])

    def imap(self, fn: Callable[..., Any], tasks: Sequence[Any], *, shared: Sequence[Any] = (),
             errors: bool = False):
        if not len(tasks):
            return
        ray = self._ray()
        remote = self._remote.get((fn, errors))
        if remote is None:  # a task that fails is not retried when the caller handles failures itself
            remote = self._remote[(fn, errors)] = ray.remote(num_cpus=1, **({"max_retries": 0} if errors else {}))(fn)
        refs = [ray.put(value) for value in shared]
        pending = [remote.remote(*refs, task) for task in tasks]
        got = 0  # results taken: those tasks are over
        try:
            for ref in pending:
                try:
                    result = ray.get(ref)
                except (ray.exceptions.RayTaskError, ray.exceptions.RayActorError,
                        ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError) as exc:
                    if not errors:
                        raise
                    result = exc
                got += 1
                yield result
        finally:  # a consumer that stops early (Ctrl-C, close()) leaves no task running. Only the tasks whose
            # results were not taken are cancelled: a consumer that took every result and never asked for
            # the end (zip with a shorter iterable) cancels nothing, as cancelling a task Ray is completing
            # can abort the driver (Ray's "Tried to complete task that was not pending", ray-project/ray#54798)
            for ref in pending[got:]:
                ray.cancel(ref, force=True)


_STARTED: list[bool] = []


def _shutdown() -> None:
    import ray

    if _STARTED and ray.is_initialized():
        ray.shutdown()
    _STARTED.clear()


def _embed_options_class():
    from ..settings import EmbedOptions

    return EmbedOptions


class _EmbedActor:
    """One Ray Data actor: loads the embedder once, then encodes one chunk (one local batch) per call."""

    def __init__(self, factory, model_id: str, threads: int, model=None) -> None:
        import ray

        factory, model = (ray.get(x) if isinstance(x, ray.ObjectRef) else x for x in (factory, model))
        if model is not None:
            unpack_model(model, factory)
        self.embedder = _build(factory, threads)
        if self.embedder.model_id != model_id:
            raise RuntimeError(f"a ray worker loaded {self.embedder.model_id!r}, the driver {model_id!r}: "
                               "the workers need the same model, backend and pooling")

    def __call__(self, batch: dict) -> dict:
        views, rows, vectors = [], [], []
        for view, chunk, texts in zip(batch["view"], batch["rows"], batch["texts"]):
            chunk = np.asarray(chunk, dtype=np.int64)
            vectors.append(self.embedder.encode([str(t) for t in texts]))
            views.append(np.full(len(chunk), int(view), dtype=np.int64))
            rows.append(chunk)
        return {"view": np.concatenate(views), "row": np.concatenate(rows), "vector": np.concatenate(vectors)}


def _build(factory, threads: int):
    """The embedder ``factory`` describes; an ``EmbedOptions`` without ``threads`` gets the actor's CPUs."""
    if isinstance(factory, _embed_options_class()):
        if factory.threads is None:
            factory = dataclasses.replace(factory, threads=threads)
        return factory.load()
    if hasattr(factory, "load"):
        return factory.load()
    if callable(factory) and not hasattr(factory, "encode"):
        return factory()
    return factory  # an embedder object shipped as it is


# -- model distribution through the object store ------------------------------------------------------

_NOT_NEEDED = {  # files of the converted default model a backend never reads
    "onnx-int8": ("model.safetensors", "onnx-v2/model.onnx"),
    "onnx": ("model.safetensors", "onnx-v2/model_int8.onnx"),
    "torch": ("onnx-v2/",),
    "torch-bf16": ("onnx-v2/",),
}


def pack_model(folder: pathlib.Path, backend: str) -> dict[str, bytes]:
    """``{relative path: bytes}`` of the model folder, without the files ``backend`` does not read."""
    skip = _NOT_NEEDED.get(backend, ())
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not any(rel == s or (s.endswith("/") and rel.startswith(s)) for s in skip):
            files[rel] = path.read_bytes()
    return files


def unpack_model(files: dict[str, bytes], options) -> pathlib.Path:
    """Write shipped model files into this node's cache (once per node, atomically); returns the folder."""
    from ..embed import DEFAULT_MODEL_NAME
    from ..embed.cache import build_once, models_dir

    target = models_dir(options.cache_dir) / DEFAULT_MODEL_NAME
    if target.is_dir():
        return target

    def write(tmp: pathlib.Path) -> None:
        for rel, data in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    target.parent.mkdir(parents=True, exist_ok=True)
    return build_once(target, write, what=f"{DEFAULT_MODEL_NAME} from the ray driver")
