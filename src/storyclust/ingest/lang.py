"""Language identification with py3langid (97+ languages, incl. Indonesian and Malay)."""
from __future__ import annotations

import functools
import itertools
from typing import Optional

from py3langid.langid import MODEL_FILE, LanguageIdentifier

__all__ = ["detect_language", "warm_up"]

#: Texts shorter than this (in characters) are not classified: too little evidence.
MIN_LANG_CHARS = 20
#: Only the start of long texts is classified. py3langid's cost is linear in the sample
#: (a Python loop over its bytes: ~0.6 ms per 1,000 characters on the dev box, the costliest
#: step of ingest after trafilatura at 4,000); on the 2,309 texts of the SemEval dev set
#: (10 languages) 1,000 characters gave the language 4,000 gave for every text (accuracy
#: against the labels 99.74% both), and on its 52 texts of 3,000+ characters 1,000, 1,500 and
#: 2,000 characters all did, every one with confidence 1.0.
SAMPLE_CHARS = 1000


@functools.lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    """The bundled model with normalised probabilities, loaded once per process."""
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> tuple[Optional[str], Optional[float]]:
    """``(ISO 639 code, probability)`` of ``text``, or ``(None, None)`` when it is too short.

    The code is two letters (ISO 639-1) for every language that has one; the
    model's few languages without one keep their three-letter code. ``zxx``
    (no linguistic content) comes back as ``None``.
    """
    sample = text[:SAMPLE_CHARS]
    if next(itertools.islice(filter(str.isalpha, sample), MIN_LANG_CHARS - 1, None), None) is None:  # < 20 letters
        return None, None
    lang, prob = _identifier().classify(sample)
    if lang in ("zxx", "und"):
        return None, None
    return lang, round(float(prob), 4)


def warm_up() -> None:
    """Load the model now rather than on the first text (used by the worker forkserver)."""
    _identifier()
