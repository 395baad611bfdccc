"""Stories built from data/samples/ without the embedding model, for the report, labels and explain tests.

The articles are ingested for real (``ingest_paths``, one process); they are grouped by the gold
clustering in tests/fixtures/samples_gold.json, and each member's similarity is the cosine of its
character n-gram TF-IDF vector to its story's mean, so the numbers vary as real ones do.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from storyclust.ingest import IngestOptions, ingest_paths
from storyclust.types import Article, Story, StoryMember

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
GOLD = json.loads((ROOT / "tests" / "fixtures" / "samples_gold.json").read_text(encoding="utf-8"))


def gold_key(article: Article) -> str:
    rel = Path(article.path).resolve().relative_to(SAMPLES.resolve()).as_posix()
    return f"{rel}#{article.id}" if ".json" in rel else rel


@functools.lru_cache(maxsize=1)
def sample_articles() -> dict[str, Article]:
    """``{gold key: Article}`` of every sample article."""
    items = ingest_paths([str(SAMPLES)], IngestOptions(jobs=1))
    return {gold_key(a): a for a in items if isinstance(a, Article)}


@functools.lru_cache(maxsize=1)
def sample_stories() -> tuple[Story, ...]:
    """The gold stories of data/samples (10 stories of 2-4 articles, 5 singletons)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    by_key = sample_articles()
    groups = [(f"s_{name}", members) for name, members in sorted(GOLD["stories"].items())]
    groups += [(f"s_single{i}", [key]) for i, key in enumerate(GOLD["singletons"])]
    keys = [k for _, members in groups for k in members]
    X = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 4)).fit_transform(
        [by_key[k].text for k in keys]).toarray()
    row = {k: X[i] for i, k in enumerate(keys)}
    stories = []
    for sid, members in groups:
        centroid = np.mean([row[k] for k in members], axis=0)
        centroid /= np.linalg.norm(centroid)
        stories.append(Story(
            story_id=sid,
            members=tuple(StoryMember(by_key[k], round(float(row[k] @ centroid), 4), joined_by="cluster")
                          for k in members),
            singleton=len(members) == 1,
        ))
    return tuple(stories)


def build_state(path: Path, nights: int = 3) -> None:
    """A state file holding every sample article, fed over ``nights`` nightly runs a day apart and
    clustered by the word-hash embedder of tests/wordhash.py (no model)."""
    from datetime import datetime, timedelta, timezone

    from wordhash import WordHashEmbedder

    from storyclust.incremental import nightly
    from storyclust.settings import StateOptions
    from storyclust.store import open_store

    articles = list(sample_articles().values())
    night0 = datetime(2026, 3, 1, 23, 0, tzinfo=timezone.utc)
    with open_store(path) as store:
        for night in range(nights):
            nightly(store, articles[night::nights], WordHashEmbedder(), lambda stories: None,
                    state=StateOptions(now=night0 + timedelta(days=night), story_window=timedelta(days=30)))
