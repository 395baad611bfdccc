"""Reading files in worker processes, results handed back in input order.

Each worker is a process started from a ``forkserver`` (safe when the parent
has threads, cheap to replace) that reads whole files and streams one message
per record back through a pipe. The parent keeps a small window of files in
flight, re-orders results to input order and yields them as they arrive.

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
:func:`_without_main_module`), so a plain script that calls the library without
an ``if __name__ == "__main__":`` guard works: its top level is not run again
in every worker.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
import types
from typing import Callable, Iterator, Optional

from ..types import Rejection
from .options import IngestOptions
from .readers import Located, read_file
from .timeout import time_limit

__all__ = ["read_task", "ordered_results", "FILE_DONE"]

#: Marker yielded after the last item of each file.
FILE_DONE = None
_PRELOAD = ["storyclust.ingest._preload"]
#: See the module docstring: makes a worker hang in C on matching paths (tests only).
STALL_ENV = "STORYCLUST_TEST_STALL"


def read_task(path: str, options: IngestOptions) -> Iterator[Located]:
    """:func:`read_file`, with an unexpected exception turned into one ``parse_error`` rejection.

    Used in the parent (``jobs=1``) and in workers alike, so both give the same output.
    """
    try:
        yield from read_file(path, options)
    except Exception as exc:  # a bug on a strange input must not end a long run
        detail = f"internal error while reading: {exc!r}"[:300].splitlines()[0]
        yield Located(path, Rejection(path, "parse_error", detail))


@contextlib.contextmanager
def _without_main_module() -> Iterator[None]:
    """Hide the caller's ``__main__`` module while worker processes are started.

    For every new process, multiprocessing records where ``__main__`` came from
    (its ``__file__``, or its ``__spec__`` name under ``python -m``) and the
    child imports it again as ``__mp_main__`` before running its target
    (``multiprocessing.spawn.get_preparation_data`` / ``_fixup_main_from_path``).
    A script without a main guard would then run its own top level, start a
    pool inside the worker and kill it ("Safe importing of main module").
    Workers run only this package's code and receive only its objects, so they
    are started with a bare stand-in ``__main__``. ``Process.start`` builds the
    preparation data synchronously, so the swap lasts only that call.
    """
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if main is None:
            del sys.modules["__main__"]
        else:
            sys.modules["__main__"] = main


def _stall_in_c(options: IngestOptions) -> None:
    """The :data:`STALL_ENV` hook: hang like C code that never returns, until killed."""
    with time_limit(options.timeout):  # armed as for a real document, but it cannot fire:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        while True:
            time.sleep(3600)  # one C call; SIGALRM is blocked, so nothing interrupts it


def _serve(conn: multiprocessing.connection.Connection, options: IngestOptions, stall: Optional[str] = None) -> None:
    """Worker loop: receive ``(index, path)``, send ``("item", index, Located)``... then ``("done", index)``."""
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
        for located in read_task(path, options):
            conn.send(("item", index, located))
        conn.send(("done", index, None))


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(
        self, ctx: multiprocessing.context.BaseContext, options: IngestOptions, stall: Optional[str] = None
    ) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(
            target=_serve, args=(child, options, stall), name="storyclust-ingest", daemon=True
        )
        with _without_main_module():
            self.process.start()
        child.close()
        self.task: Optional[int] = None
        self.silent = 0.0  # seconds the parent waited without a message from it

    def assign(self, index: int, path: str) -> bool:
        """Send a file to the worker; False if its pipe is broken (the worker died)."""
        self.task = index
        self.silent = 0.0
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
        self.limit = 2 * options.timeout + 2 if options.timeout > 0 else None

    def dispatch(self, queue: collections.deque[int], horizon: int) -> None:
        for worker in self.workers:
            if worker.task is None and queue and queue[0] < horizon:
                index = queue.popleft()
                if not worker.assign(index, self.paths[index]):
                    self._replace(worker, "worker_died", "worker process died before reading the file")

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
                kind, index, located = worker.conn.recv()
            except (EOFError, OSError):
                worker.process.join(timeout=1)
                code = worker.process.exitcode
                self._replace(worker, "worker_died", f"worker process died (exit code {code})")
                return
            if kind == "item":
                self.buffers[index].append(located)
            else:
                self.done.add(index)
                worker.task = None

    def _replace(self, worker: _Worker, reason: str, detail: str) -> None:
        """End ``worker``'s file with one rejection and put a fresh worker in its place."""
        index = worker.task
        assert index is not None
        path = self.paths[index]
        worker.kill()
        worker.conn.close()
        self.buffers[index].append(Located(path, Rejection(path, reason, detail)))
        self.done.add(index)
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
    queue = collections.deque(i for i in range(len(paths)) if i not in local)
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
                    pool.dispatch(queue, index + window)
                    pool.wait()
                pool.buffers.pop(index, None)
            yield index, FILE_DONE
    finally:
        pool.close()
