"""Settings and counters of one ingest run."""
from __future__ import annotations

import collections
from dataclasses import dataclass, field

from .dedupe import MINHASH_MAX_CHARS, PERMUTATIONS, SEED

__all__ = ["IngestOptions", "IngestStats"]


@dataclass(frozen=True)
class IngestOptions:
    """How :func:`~storyclust.ingest.ingest_paths` reads its inputs.

    Attributes:
        jobs: worker processes; None = ``os.cpu_count()``; 1 = everything in this process.
        max_file_bytes: files larger than this on disk become ``too_large`` without being read;
            also the longest JSON Lines line (a longer one is ``too_large`` and skipped without
            being held in memory, on stdin too).
        max_decompressed_bytes: output limit of every compressed layer (a ``.gz`` file, a gzip
            or deflate ``Content-Encoding`` inside a WARC record); past it the file (or record)
            is a ``decompress_error``: a decompression bomb is stopped after this many bytes.
        max_html_bytes: one HTML document (file, WARC or JSON record) larger than this is
            ``too_large``; trafilatura is not built for bigger pages and would take minutes.
        timeout: seconds one document (a file, or one record of a JSONL, JSON or WARC file)
            may take to sniff, decode, extract, clean and date before it becomes ``timeout``,
            with or without worker processes (Unix, main thread: SIGALRM); with workers, a
            worker silent for ``2 * timeout + 2`` s is killed (``timeout`` too). 0 disables it.
        min_chars: article text shorter than this (after cleaning) is ``no_text``.
        dedupe: exact duplicates become ``duplicate`` rejections; near duplicates are
            kept as articles with ``duplicate_of`` set to the first copy's id.
        near_duplicate_threshold: estimated Jaccard similarity of word 3-shingles at or
            above which a later article is a near duplicate of an earlier one.
        minhash_permutations: MinHash signature length (more = finer Jaccard estimates).
        minhash_max_chars: near duplicates are judged on this many leading characters of
            each text (default 200,000: ~40 times a long wire). This caps what the parent
            spends on one article's MinHash at ~25 MiB and a fraction of a second whatever the
            text's length (a 20 MiB text of distinct words needed gigabytes uncapped).
            Exact duplicates always compare the whole text (content hash).
        seed: seed of the MinHash permutations (results are deterministic for a seed).
        fast_extract: trafilatura's ``fast=True``: no comparison with readability and jusText
            and no jusText rescue. Off by default: on the pages of ``bench/bench_ingest.py
            --extraction-cost`` it changes part of the texts and on some pages
            returns the related-article list instead of the story (figures there).

    Memory: a run holds one document at a time per process (at most ``max_file_bytes`` of
    input, or ``max_html_bytes`` of HTML, as bytes and decoded text plus a few normalised
    copies), plus per article kept by the caller its text. ``tests/test_hostile.py``
    checks that ``storyclust ingest`` on a 20 MiB text of distinct words peaks under 1 GiB.
    """

    jobs: int | None = None
    max_file_bytes: int = 64 * 2**20
    max_decompressed_bytes: int = 256 * 2**20
    max_html_bytes: int = 16 * 2**20
    timeout: float = 30.0
    min_chars: int = 100
    dedupe: bool = True
    near_duplicate_threshold: float = 0.8
    minhash_permutations: int = PERMUTATIONS
    minhash_max_chars: int = MINHASH_MAX_CHARS
    seed: int = SEED
    fast_extract: bool = False

    def __post_init__(self) -> None:
        if self.jobs is not None and self.jobs < 1:
            raise ValueError("jobs must be >= 1 or None")
        if not 0.0 < self.near_duplicate_threshold <= 1.0:
            raise ValueError("near_duplicate_threshold must be in (0, 1]")
        if self.minhash_permutations < 16 or self.minhash_permutations % 16:
            raise ValueError("minhash_permutations must be a positive multiple of 16")
        for name in ("max_file_bytes", "max_decompressed_bytes", "max_html_bytes", "minhash_max_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")


@dataclass
class IngestStats:
    """Counters filled while :func:`~storyclust.ingest.ingest_paths` runs.

    ``records_seen`` counts every input that ended as an article or a rejection
    (a plain file is one record, a JSONL file one per line), so
    ``records_seen == articles + sum(rejects.values())`` once the run is over.
    ``near_duplicates`` counts the articles that got a ``duplicate_of`` (exact copies under another id and near copies).
    """

    files_seen: int = 0
    records_seen: int = 0
    articles: int = 0
    near_duplicates: int = 0
    rejects: collections.Counter = field(default_factory=collections.Counter)

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())

    def summary_line(self) -> str:
        """E.g. ``ingest: 12 files, 14 records -> 11 articles, 3 rejected (binary 1, duplicate 1, empty 1)``."""
        line = (
            f"ingest: {self.files_seen} files, {self.records_seen} records -> "
            f"{self.articles} articles, {self.rejected} rejected"
        )
        if self.rejects:
            reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(self.rejects.items()))
            line += f" ({reasons})"
        if self.near_duplicates:
            line += f"; {self.near_duplicates} copies marked with duplicate_of"
        return line
