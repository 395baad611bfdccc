"""Reading files in worker processes, results handed back in input order.

Each worker is a process started from a ``forkserver`` (safe when the parent
has threads, cheap to replace), once per run, that reads whole files and sends
their records back through a pipe in batches: one message for a file of one
record (an HTML page), one per :data:`BATCH_RECORDS` records or
:data:`BATCH_CHARS` characters of text for a JSONL or WARC file (so a big archive
is never held whole). Each worker has up to :data:`AHEAD` files assigned, so it
starts the next one without waiting for the parent to answer. The parent keeps a
small window of files in flight, re-orders results to input order and yields them
as they arrive.

A worker that stays silent for longer than ``2 * timeout + 2`` seconds (its own
SIGALRM limit did not fire: stuck in C code) is killed and replaced; its file
ends with a ``timeout`` rejection. A worker that dies (crash, OOM killer) is
replaced too; its file ends with ``worker_died``. Both reasons are transient
(:data:`storyclust.types.TRANSIENT_REASONS`): the file may well read next time.
Only time the parent spends waiting counts, so a slow consumer never causes a kill.

Workers never outlive the parent's iteration: when the consumer stops early
(``close()`` on the generator, an exception, Ctrl-C's KeyboardInterrupt), every
worker is told to stop, and killed if busy, before the exception goes on.

Test hook: when the environment variable ``STORYCLUST_TEST_STALL`` is set (read
when a pool starts), a worker given a path that contains its value blocks
SIGALRM and sleeps in C until it is killed, exactly as a worker stuck in
libxml2 would: the in-process time limit cannot fire, only the watchdog helps.

Workers are started without the caller's ``__main__`` module (see
:func:`storyclust.workers.without_main_module`), so a plain script that calls
the library without an ``if __name__ == "__main__":`` guard works: its top
level is not run again in every worker.
"""
from __future__ import annotations

import collections
import functools
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from typing import Callable, Iterator, Optional

from ..types import Article, Rejection
from ..workers import without_main_module
from .dedupe import Deduplicator
from .options import IngestOptions
from .readers import Located, read_file
from .timeout import time_limit

__all__ = ["read_task", "ordered_results", "FILE_DONE"]

logger = logging.getLogger(__name__)

#: Marker yielded after the last item of each file.
FILE_DONE = None
#: Files assigned to a worker at once (the one it reads, and the next ones).
AHEAD = 2
#: A worker sends what it has read of a file once it holds this many records...
BATCH_RECORDS = 64
#: ... or this many characters of article text, and at the end of the file.
BATCH_CHARS = 1 << 20
_PRELOAD = ["storyclust.ingest._preload"]
#: See the module docstring: makes a worker hang in C on matching paths (tests only).
STALL_ENV = "STORYCLUST_TEST_STALL"


def read_task(path: str, options: IngestOptions, *, sign: bool = False) -> Iterator[Located]:
    """:func:`read_file`, with an unexpected exception turned into one ``parse_error`` rejection.

    Used in the parent (``jobs=1``) and in workers alike, so both give the same output. ``sign`` (in
    workers), with ``options.dedupe``: each article comes with its MinHash signature (``Located.signed``),
    so that workers shingle in parallel and the parent's near-copy check only looks signatures up. The
    parent reading alone leaves that to the check, which skips exact copies.
    """
    try:
        for located in read_file(path, options):
            yield _signed(located, options) if sign else located
    except Exception as exc:  # a bug on a strange input must not end a long run
        detail = f"internal error while reading: {exc!r}"[:300].splitlines()[0]
        yield Located(path, Rejection(path, "parse_error", detail))


def _signed(located: Located, options: IngestOptions) -> Located:
    """``located`` with its article's MinHash signature; unsigned (the parent signs it) if signing fails."""
    if not options.dedupe or not isinstance(located.item, Article):
        return located
    signer = _signer(options.minhash_permutations, options.seed, options.minhash_max_chars)
    try:
        return located._replace(signed=(signer.signature(located.item),))
    except Exception:  # never cost the rest of the file: the parent's check computes it again
        logger.debug("could not sign %s here", located.source, exc_info=True)
        return located


@functools.lru_cache(maxsize=4)
def _signer(permutations: int, seed: int, max_chars: int) -> Deduplicator:
    """One signing recipe per process (the permutations are drawn once)."""
    return Deduplicator(permutations=permutations, seed=seed, max_chars=max_chars)


def _stall_in_c(options: IngestOptions) -> None:
    """The :data:`STALL_ENV` hook: hang like C code that never returns, until killed."""
    with time_limit(options.timeout):  # armed as for a real document, but it cannot fire:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        while True:
            time.sleep(3600)  # one C call; SIGALRM is blocked, so nothing interrupts it


def _weight(located: Located) -> int:
    text = getattr(located.item, "text", None)
    return len(text) if isinstance(text, str) else 0


def _serve(conn: multiprocessing.connection.Connection, options: IngestOptions, stall: Optional[str] = None) -> None:
    """Worker loop: receive ``(index, path)``; send ``("items", index, [Located, ...])`` for
    each full batch, then ``("done", index, [the rest])``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    # Libraries' per-document log lines would reach stderr through logging's last-resort
    # handler; the parent reports every problem as a Rejection instead.
    logging.getLogger().addHandler(logging.NullHandler())
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        index, path = message
        if stall and stall in path:
            _stall_in_c(options)
        batch: list[Located] = []
        chars = 0
        for located in read_task(path, options, sign=True):
            batch.append(located)
            chars += _weight(located)
            if len(batch) >= BATCH_RECORDS or chars >= BATCH_CHARS:
                conn.send(("items", index, batch))
                batch, chars = [], 0
        conn.send(("done", index, batch))


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(
        self, ctx: multiprocessing.context.BaseContext, options: IngestOptions, stall: Optional[str] = None
    ) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_serve, args=(child, options, stall), name="storyclust-ingest", daemon=True
        )
        with without_main_module():
            self.process.start()
        child.close()
        self.tasks: collections.deque[int] = collections.deque()  # assigned files; the first is being read
        self.silent = 0.0  # seconds the parent waited without a message from it

    @property
    def task(self) -> Optional[int]:
        """The file being read, or None when idle."""
        return self.tasks[0] if self.tasks else None

    def assign(self, index: int, path: str) -> bool:
        """Send a file to the worker; False if its pipe is broken (the worker died)."""
        if not self.tasks:
            self.silent = 0.0
        self.tasks.append(index)
        try:
            self.conn.send((index, path))
        except OSError:
            return False
        return True

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.kill()
        self.conn.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join()


class _Pool:
    """Workers plus the per-file buffers that put their results back in order."""

    def __init__(self, paths: list[str], options: IngestOptions, jobs: int) -> None:
        self.paths = paths
        self.options = options
        self.ctx = multiprocessing.get_context("forkserver")
        self.ctx.set_forkserver_preload(_PRELOAD)
        self.stall = os.environ.get(STALL_ENV) or None
        self.workers: list[_Worker] = []
        try:
            for _ in range(jobs):
                self.workers.append(self._new_worker())
        except BaseException:  # Ctrl-C while starting: stop the workers already started
            self.close()
            raise
        self.buffers: dict[int, collections.deque[Located]] = collections.defaultdict(collections.deque)
        self.done: set[int] = set()
        self.queue: collections.deque[int] = collections.deque()  # files not yet assigned, in input order
        self.limit = 2 * options.timeout + 2 if options.timeout > 0 else None

    def dispatch(self, horizon: int) -> None:
        """Give idle workers a file first, then fill every worker up to :data:`AHEAD` files."""
        for depth in range(1, AHEAD + 1):
            for k in range(len(self.workers)):
                worker = self.workers[k]
                if len(worker.tasks) < depth and self.queue and self.queue[0] < horizon:
                    index = self.queue.popleft()
                    if not worker.assign(index, self.paths[index]):
                        started = worker.task != index
                        self._replace(worker, "worker_died", "worker process died" if started
                                      else "worker process died before reading the file")

    def wait(self) -> None:
        """Wait for messages from busy workers; kill those silent for too long."""
        busy = [w for w in self.workers if w.task is not None]
        if not busy:
            return
        timeout = None
        if self.limit is not None:
            timeout = max(0.0, min(self.limit - w.silent for w in busy)) + 0.05
        started = time.monotonic()
        ready = multiprocessing.connection.wait([w.conn for w in busy], timeout=timeout)
        elapsed = time.monotonic() - started
        for worker in busy:
            if worker.conn in ready:
                worker.silent = 0.0
                self._drain(worker)
            else:
                worker.silent += elapsed
                if self.limit is not None and worker.silent > self.limit:
                    self._replace(worker, "timeout", f"worker gave no answer for {self.limit:g} s and was killed")

    def _drain(self, worker: _Worker) -> None:
        while worker.task is not None and worker.conn.poll():
            try:
                kind, index, batch = worker.conn.recv()
            except (EOFError, OSError):
                worker.process.join(timeout=1)
                code = worker.process.exitcode
                self._replace(worker, "worker_died", f"worker process died (exit code {code})")
                return
            self.buffers[index].extend(batch)
            if kind == "done":
                self.done.add(index)
                worker.tasks.popleft()

    def _replace(self, worker: _Worker, reason: str, detail: str) -> None:
        """End ``worker``'s file with one rejection, hand the files it had not started back to
        the queue, and put a fresh worker in its place."""
        index = worker.task
        assert index is not None
        path = self.paths[index]
        worker.kill()
        worker.conn.close()
        self.buffers[index].append(Located(path, Rejection(path, reason, detail)))
        self.done.add(index)
        pending = list(worker.tasks)[1:]
        self.queue.extendleft(reversed(pending))  # all lower than anything still queued: order kept
        self.workers[self.workers.index(worker)] = self._new_worker()

    def _new_worker(self) -> _Worker:
        return _Worker(self.ctx, self.options, self.stall)

    def reset_clocks(self) -> None:
        """Forget silence that accrued while the parent was busy elsewhere."""
        for worker in self.workers:
            worker.silent = 0.0

    def close(self) -> None:
        """Stop every worker: busy ones are killed at once, idle ones told to exit (killed after 2 s)."""
        for worker in self.workers:
            if worker.task is not None:
                worker.kill()
                worker.conn.close()
        for worker in self.workers:
            if worker.task is None:
                worker.close()


def ordered_results(
    paths: list[str],
    options: IngestOptions,
    jobs: int,
    read_local: Callable[[str], Optional[Iterator[Located]]],
) -> Iterator[tuple[int, Optional[Located]]]:
    """``(file index, Located)`` for every record of every path, in input order.

    Each file's items are followed by ``(index, FILE_DONE)``. ``read_local(path)``
    returns an iterator for paths the parent must read itself (stdin), else None;
    such paths are read when their turn comes. Everything else goes to ``jobs``
    worker processes, at most ``4 * jobs`` files ahead of the one being yielded.
    """
    pool = _Pool(paths, options, jobs)
    local = {i: it for i, p in enumerate(paths) if (it := read_local(p)) is not None}
    pool.queue.extend(i for i in range(len(paths)) if i not in local)
    window = 4 * jobs
    try:
        for index in range(len(paths)):
            if index in local:
                for located in local.pop(index):
                    yield index, located
                pool.reset_clocks()
            else:
                buffer = pool.buffers[index]
                while True:
                    while buffer:
                        yield index, buffer.popleft()
                    if index in pool.done:
                        break
                    pool.dispatch(index + window)
                    pool.wait()
                pool.buffers.pop(index, None)
            yield index, FILE_DONE
    finally:
        pool.close()
