"""Where a run's time goes: wall-clock seconds per stage, logged at ``-v`` as one ``stages:`` line.

The drivers wrap each stage in :func:`stage`; the seconds add up per name over the process's
life, so a stage that runs in several pieces (ingest interleaved with reading) still shows as
one figure. Names with a ``/`` are parts of the stage before it (``embed/lead`` inside
``embed``) and are printed in brackets after it::

    stages: ingest 0.61 s, load model 2.10 s, embed 47.9 s (whole text 29.8 s, lead 18.1 s), ...

The figures are what ``bench/bench_speed.py`` reports as the cost per stage.
"""
from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator

_lock = threading.Lock()
_seconds: dict[str, float] = {}


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the wall-clock time of the ``with`` block to stage ``name``."""
    with _lock:
        _seconds.setdefault(name, 0.0)  # listed in the order the stages start
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        with _lock:
            _seconds[name] = _seconds.get(name, 0.0) + elapsed  # (a reset() meanwhile restarts the count)


def stage_seconds() -> dict[str, float]:
    """The seconds per stage so far, in the order the stages first ran."""
    with _lock:
        return dict(_seconds)


def reset() -> None:
    """Forget the stages timed so far (e.g. between two runs in one process)."""
    with _lock:
        _seconds.clear()


def _fmt(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def summary_line(seconds: dict[str, float] | None = None) -> str:
    """``stages: ingest 0.61 s, embed 47.9 s (whole text 29.8 s, lead 18.1 s), ...``."""
    seconds = stage_seconds() if seconds is None else seconds
    parts: list[str] = []
    for name, secs in seconds.items():
        if "/" in name:
            continue
        inner = [f"{sub.split('/', 1)[1]} {_fmt(s)}" for sub, s in seconds.items() if sub.startswith(name + "/")]
        parts.append(f"{name} {_fmt(secs)}" + (f" ({', '.join(inner)})" if inner else ""))
    return "stages: " + (", ".join(parts) if parts else "none")


def parse_summary(line: str) -> dict[str, float]:
    """The seconds per stage of a :func:`summary_line` (``{"embed": 47.9, "embed/lead": 18.1, ...}``)."""
    body = line.split("stages:", 1)[1]
    out: dict[str, float] = {}
    for m in re.finditer(r"([^,(]+?) (\d+(?:\.\d+)?) s(?: \(([^)]*)\))?", body):
        name = m.group(1).strip()
        out[name] = float(m.group(2))
        for sm in re.finditer(r"([^,]+?) (\d+(?:\.\d+)?) s", m.group(3) or ""):
            out[f"{name}/{sm.group(1).strip()}"] = float(sm.group(2))
    return out


__all__ = ["stage", "stage_seconds", "reset", "summary_line", "parse_summary"]
