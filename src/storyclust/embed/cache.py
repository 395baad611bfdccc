"""Where storyclust keeps converted and exported models, and how it creates them safely.

Every artefact (a converted model folder, an exported ONNX folder, a quantized file) is
built once by :func:`build_once`: under an exclusive ``fcntl.flock`` lock, into a hidden
temporary path in the same parent directory, then moved into place with ``os.rename``.
A reader therefore sees either nothing or a complete artefact; a crashed build leaves
only a hidden ``.NAME.tmp-*`` leftover, which the next build removes.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

_TMP_INFIX = ".tmp-"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The storyclust cache directory.

    ``cache_dir`` if given, else ``$STORYCLUST_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/storyclust``, else ``~/.cache/storyclust``.
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("STORYCLUST_CACHE_DIR"):
        return Path(os.environ["STORYCLUST_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "storyclust"


def models_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<cache root>/models``: one sub-folder per model."""
    return cache_root(cache_dir) / "models"


def user_model_key(name_or_path: str, stamp: str = "") -> str:
    """A folder name for a user model: readable tail plus a hash of the name/path and ``stamp``.

    ``stamp`` describes the weights (e.g. sizes and mtimes), so changed weights get a new key.
    """
    digest = hashlib.sha256(f"{name_or_path}|{stamp}".encode("utf-8")).hexdigest()[:16]
    tail = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in Path(name_or_path).name)[:40]
    return f"user-{tail or 'model'}-{digest}"


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (created if missing)."""
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_leftovers(target: Path) -> None:
    """Delete temporary paths left by crashed builds of ``target`` (caller holds the lock)."""
    for leftover in target.parent.glob(f".{target.name}{_TMP_INFIX}*"):
        logger.info("removing leftover of an interrupted build: %s", leftover)
        _remove(leftover)


def build_once(target: Path, build: Callable[[Path], None], *, what: str) -> Path:
    """Return ``target``, creating it first with ``build`` if it does not exist yet.

    ``build(tmp)`` receives a path that does not exist, in ``target``'s directory, and
    must create it (as a file or as a directory). On success ``tmp`` is renamed to
    ``target``; on any error it is removed and the error propagates. Concurrent callers
    (threads or processes) serialise on a lock file next to ``target``; the ones that
    wait find the finished ``target`` and return it without building.
    """
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.parent / f".{target.name}.lock"):
        if target.exists():
            return target
        _remove_leftovers(target)
        tmp = target.parent / f".{target.name}{_TMP_INFIX}{os.getpid()}-{secrets.token_hex(4)}"
        logger.info("building %s (once) in %s", what, target)
        try:
            build(tmp)
            os.rename(tmp, target)
        except BaseException:
            _remove(tmp)
            raise
    return target
