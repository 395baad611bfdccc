"""A per-document time limit that interrupts Python code (SIGALRM, Unix main thread).

A signal handler runs between Python bytecodes, so this interrupts trafilatura's
Python loops but not one long call inside lxml's C code. The process pool in
:mod:`storyclust.ingest.parallel` therefore also kills and replaces a worker
that stops answering; this limit is the cheap first line of defence.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

__all__ = ["ExtractionTimeout", "time_limit", "can_interrupt"]


class ExtractionTimeout(BaseException):
    """Raised inside the guarded block when its time is up.

    A BaseException, so that libraries' ``except Exception`` blocks do not swallow it.
    """


def can_interrupt() -> bool:
    """True where :func:`time_limit` really interrupts: Unix, in the main thread."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _raise_timeout(signum: int, frame: object) -> None:
    raise ExtractionTimeout()


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`ExtractionTimeout` in the block after ``seconds`` of wall time.

    A no-op when ``seconds`` is not positive or when :func:`can_interrupt` is False.
    """
    if seconds <= 0 or not can_interrupt():
        yield
        return
    previous = signal.signal(signal.SIGALRM, _raise_timeout)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
