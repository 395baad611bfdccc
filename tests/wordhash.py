"""A small deterministic embedder for the logic tests: no model, same vectors on every machine.

Each word of a text (lower-cased, 3+ letters) adds a fixed pseudo-random unit vector chosen by
its CRC-32; the sum is normalised. Texts that share words are close, texts that share none are
nearly orthogonal. It follows the :class:`storyclust.embed.Embedder` protocol, so the real
pipeline, store and CLI run on it unchanged; only the vectors are cheap.
"""
from __future__ import annotations

import re
import zlib
from typing import Sequence

import numpy as np

_WORD = re.compile(r"[^\W\d_]{3,}")


class WordHashEmbedder:
    def __init__(self, dim: int = 96, seed: int = 7) -> None:
        self.dim = dim
        self.model_id = f"wordhash-{dim}-{seed}"
        self._seed = seed
        self.encoded = 0  # texts encoded so far (tests count cache hits with it)

    def _word(self, word: str) -> np.ndarray:
        rng = np.random.default_rng(zlib.crc32(word.encode("utf-8")) ^ self._seed)
        v = rng.normal(size=self.dim)
        return v / np.linalg.norm(v)

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        self.encoded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            words = _WORD.findall(text.casefold())
            v = sum((self._word(w) for w in words), np.zeros(self.dim)) if words else np.ones(self.dim)
            out[i] = v / max(np.linalg.norm(v), 1e-12)
        return out


TOPICS = {
    "quake": "earthquake magnitude tremor epicentre rescue collapsed buildings aftershock seismic coast",
    "vote": "parliament vote coalition minister budget opposition ballot majority reform session",
    "final": "football final stadium goal striker trophy penalty champions coach supporters",
    "storm": "cyclone storm winds rainfall flooding evacuation landfall shelters meteorological warning",
    "drug": "medicine agency approval treatment patients trial dementia regulator therapy clinical",
    "fire": "datacenter fire servers outage cloud customers backup smoke firefighters blackout",
}


def topic_articles(per_topic: int = 4, *, seed: int = 0):
    """Articles about six topics (ids ``<topic>-<k>``), each a mix of its topic's words and filler.

    Returns ``(articles, gold)`` with ``gold[id] = topic``. Deterministic for a seed.
    """
    from datetime import datetime, timedelta, timezone

    from storyclust.types import Article

    rng = np.random.default_rng(seed)
    filler = "said the on in for with reported officials local people after news".split()
    articles, gold = [], {}
    t0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
    for t, (topic, words) in enumerate(TOPICS.items()):
        vocab = words.split()
        for k in range(per_topic):
            picked = list(rng.choice(vocab, size=8, replace=False)) + list(rng.choice(filler, size=4))
            rng.shuffle(picked)
            aid = f"{topic}-{k}"
            text = f"{topic.title()} report {k}: " + " ".join(picked) + f". Item {aid} number {t * 10 + k}."
            articles.append(Article(id=aid, text=text, title=f"{topic} {k}", lang="en",
                                    published=t0 + timedelta(hours=t * 5 + k)))
            gold[aid] = topic
    return articles, gold
