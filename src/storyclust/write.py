"""Outputs: JSON Lines on stdout or into files written atomically.

A file is written to a temporary sibling, fsynced and renamed into place, so a killed run
never leaves half a file behind. It gets the mode a file written in place would get: an
existing file's mode, else 0666 less the umask.
"""
from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
import tempfile
from typing import IO, Iterable, Iterator, Optional

from .schema import dumps


@contextlib.contextmanager
def open_output(path: Optional[str]) -> Iterator[IO[str]]:
    """Open ``path`` for writing text; ``-`` or None is stdout.

    A real file is written to a temporary sibling and renamed into place only
    when the block finishes without an exception, so readers never see half a file.
    """
    if path in (None, "-"):
        yield sys.stdout
        sys.stdout.flush()
        return
    target = os.path.abspath(path)
    directory = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(target) + ".", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, _mode_for(target))
        with io.open(fd, "w", encoding="utf-8", newline="\n") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _mode_for(target: str) -> int:
    """The mode a file written in place would have: an existing file's, else 0666 less the umask
    (mkstemp makes 0600, which would keep a cron job's report from everyone else)."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


def write_jsonl(records: Iterable[dict], fh: IO[str]) -> int:
    n = 0
    for record in records:
        fh.write(dumps(record))
        fh.write("\n")
        n += 1
    return n
