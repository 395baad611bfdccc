"""Ingest: raw files (HTML, text, JSON/JSONL, WARC, gzipped or not) to clean articles.

::

    from storyclust.ingest import IngestOptions, IngestStats, ingest_paths

    stats = IngestStats()
    for item in ingest_paths(["wires/"], IngestOptions(jobs=2), stats=stats):
        ...  # Article or Rejection, in input order
    print(stats.summary_line())

Pipeline per file: read (size limits, gzip with a bomb guard) → sniff →
decode (BOM, declared charset, UTF-8, detection) → extract (trafilatura for
HTML, title/date/junk rules for plain text, fields for JSON) → language
(py3langid) → in the parent, in input order: exact and near-duplicate checks.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, Union

from tqdm import tqdm

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np

from ..types import Article, Rejection
from .dedupe import DEFAULT_RECIPE, Deduplicator
from .options import IngestOptions, IngestStats
from .parallel import FILE_DONE, ordered_results, read_task
from .readers import Located, read_jsonl_stream
from .walk import STDIN, expand_paths

__all__ = ["IngestOptions", "IngestStats", "ingest_paths"]

logger = logging.getLogger(__name__)


def ingest_paths(
    paths: Iterable[Union[str, os.PathLike]],
    options: Optional[IngestOptions] = None,
    *,
    stats: Optional[IngestStats] = None,
    progress: bool = False,
    engine=None,
    signatures: Optional[dict[str, Optional[np.ndarray]]] = None,
) -> Iterator[Union[Article, Rejection]]:
    """Read files and folders (``-`` = JSON Lines on stdin) into Articles and Rejections.

    Folders are walked recursively in sorted order (hidden entries skipped,
    symlink loops cut). Items come in input order, then record order, whatever
    ``options.jobs`` is. Every input file or record ends as exactly one Article
    or one Rejection; each Rejection is also logged as a WARNING on the
    ``storyclust.ingest`` logger. Bad input never raises: each record is its own
    unit of failure (see :mod:`storyclust.ingest.readers`). ``stats`` (if given) is
    updated as items are yielded; ``progress`` shows a tqdm bar on stderr.
    Stopping early (``close()``, an exception in the consumer, Ctrl-C) stops and
    reaps every worker process before the generator ends. ``engine`` (:mod:`storyclust.engine`)
    reads the files there instead of in local worker processes, with the same items in the same order.
    ``signatures`` (a dict) receives the MinHash signature of each distinct text the near-duplicate check
    shingled, by content hash, when its recipe is the one the clusterer's fold uses (the default
    ``minhash_*`` and ``seed`` options): hand it to :func:`storyclust.pipeline.fold_copies`
    (``text_signatures=``) and the texts are not shingled twice.
    """
    options = options or IngestOptions()
    stats = stats if stats is not None else IngestStats()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]  # one path, not an iterable of characters
    files = list(expand_paths(paths))
    dedupe = (
        Deduplicator(
            options.near_duplicate_threshold, options.minhash_permutations, options.seed, options.minhash_max_chars
        )
        if options.dedupe
        else None
    )
    if dedupe is not None and signatures is not None and dedupe.recipe == DEFAULT_RECIPE:
        dedupe.by_text = signatures
    bar = tqdm(total=len(files), unit="file", desc="ingest", file=sys.stderr, disable=not progress, leave=False)
    results = _located_results(files, options) if engine is None else _engine_results(files, options, engine)
    try:
        for _, located in results:
            if located is FILE_DONE:
                stats.files_seen += 1
                bar.update()
                continue
            item = located.item
            if dedupe is not None and isinstance(item, Article):
                item = dedupe.check(item, located.source, *located.signed)  # signed by the reader
            _count(item, stats)
            yield item
    finally:
        results.close()  # at once, not when garbage is collected: it owns the worker processes
        bar.close()


def _count(item: Union[Article, Rejection], stats: IngestStats) -> None:
    stats.records_seen += 1
    if isinstance(item, Article):
        stats.articles += 1
        if item.duplicate_of:
            stats.near_duplicates += 1
    else:
        stats.rejects[item.reason] += 1
        logger.warning("%s: %s: %s", item.source, item.reason, item.detail)


def _read_stdin(options: IngestOptions) -> Iterator[Located]:
    stream = getattr(sys.stdin, "buffer", sys.stdin)
    return read_jsonl_stream(stream, STDIN, options)


def _engine_results(files: list[str], options: IngestOptions, engine) -> Iterator[tuple[int, Optional[Located]]]:
    """:func:`_located_results` with the files read by ``engine`` tasks (stdin is read here), in input order."""
    per_task = max(1, min(64, -(-len(files) // (4 * max(1, engine.parallelism)))))
    spans = [(a, min(a + per_task, len(files))) for a in range(0, len(files), per_task)]
    for (a, b), part in zip(spans, engine.imap(_read_span, spans, shared=(files, options), errors=True)):
        if isinstance(part, Exception):  # the worker died: read the part again one file per task
            logger.warning("ingest worker died on files %d-%d (%s); reading them one by one", a, b - 1,
                           type(part).__name__)
            part = []
            for k, one in zip(range(a, b), engine.imap(_read_span, [(k, k + 1) for k in range(a, b)],
                                                       shared=(files, options), errors=True)):
                died = Rejection(files[k], "worker_died", "worker process died while reading the file")
                part.extend([(k, [Located(files[k], died)])] if isinstance(one, Exception) else one)
        for index, located in part:
            if files[index] == STDIN:
                located = list(_read_stdin(options))
            yield from ((index, item) for item in located)
            yield index, FILE_DONE


def _read_span(files: list[str], options: IngestOptions, span: tuple[int, int]) -> list:
    """``[(index, [Located, ...])]`` of ``files[span[0]:span[1]]`` (stdin left to the driver)."""
    return [(k, [] if files[k] == STDIN else list(read_task(files[k], options, sign=True)))
            for k in range(*span)]


def _located_results(files: list[str], options: IngestOptions) -> Iterator[tuple[int, Optional[Located]]]:
    """Everything read from ``files`` in input order; workers are used when more than one pays."""
    jobs = min(options.jobs or os.cpu_count() or 1, sum(path != STDIN for path in files))
    if jobs > 1:
        yield from ordered_results(
            files, options, jobs, lambda path: _read_stdin(options) if path == STDIN else None
        )
        return
    for index, path in enumerate(files):
        for located in _read_stdin(options) if path == STDIN else read_task(path, options):
            yield index, located
        yield index, FILE_DONE
