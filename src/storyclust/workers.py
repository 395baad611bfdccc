"""Starting worker processes from library code, whatever script called the library.

Both rooms that start processes use it: ingest's reading workers
(:mod:`storyclust.ingest.parallel`) and the ONNX export's fresh children
(:mod:`storyclust.embed.onnx_export`).
"""
from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator


@contextlib.contextmanager
def without_main_module() -> Iterator[None]:
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


__all__ = ["without_main_module"]
