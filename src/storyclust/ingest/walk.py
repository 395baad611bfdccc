"""Input paths to a deterministic list of files to read."""
from __future__ import annotations

import os
from typing import Iterable, Iterator

__all__ = ["STDIN", "expand_paths"]

#: The path that means "JSON Lines on standard input".
STDIN = "-"


def expand_paths(paths: Iterable[str | os.PathLike]) -> Iterator[str]:
    """Files under ``paths``, in input order, each folder walked recursively in sorted order.

    Hidden entries (``.git``, ``.DS_Store``...) inside folders are skipped; a
    path given explicitly is always read. Symbolic links to folders are
    followed, but each real folder is entered once, so symlink loops end. Paths
    that do not exist, or cannot be listed, are passed on as they are, so the
    reader turns them into an ``unreadable`` rejection. ``-`` passes through.
    """
    visited: set[tuple[int, int]] = set()
    for given in paths:
        path = os.fspath(given)
        if path != STDIN and os.path.isdir(path):
            yield from _walk(path, visited)
        else:
            yield path


def _walk(folder: str, visited: set[tuple[int, int]]) -> Iterator[str]:
    try:
        st = os.stat(folder)
    except OSError:
        yield folder
        return
    key = (st.st_dev, st.st_ino)
    if key in visited:
        return
    visited.add(key)
    try:
        with os.scandir(folder) as it:
            entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError:
        yield folder
        return
    for entry in entries:
        if _is_dir(entry):
            yield from _walk(entry.path, visited)
        else:
            yield entry.path


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False
