"""Why two articles are (or are not) in the same story: the evidence, side by side.

:func:`explain_pair` gathers what the clusterer weighs for a pair of articles: the cosine of their
vectors in the language-neutral space (when the vectors are known: from a state file, or from an
embedding model), the numbers they share (canonical, as :mod:`storyclust.evidence` counts them:
``20 000`` = ``20.000`` = ``20,000``), the names they share (multi-word names, acronyms and
capitalised words, compared without case and accents), how far apart they were published, whether
they are in one story and which step put each there (``StoryMember.joined_by``).
:func:`format_explanation` renders it as plain text for a terminal.
"""
from __future__ import annotations

import math
import re
import unicodedata
from datetime import datetime
from typing import Any, Optional, Union

import numpy as np

from .evidence import evidence_text, number_tokens
from .labels import function_words, name_terms
from .types import Article, Story

#: A capitalised word of 3+ letters (a place, a person, an organisation in any cased script).
_CAPWORD = re.compile(r"(?<![\w-])[^\W\d_a-z][^\W\d_]{2,}(?:-[^\W\d_]+)*")


def _fold(text: str) -> str:
    """Casefolded, accents removed: "Étienne" and "etienne" are one name."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def article_names(article: Article) -> dict[str, str]:
    """``{folded key: surface}`` of the names in an article's title and text.

    Names are multi-word capitalised names and acronyms (see :func:`storyclust.labels.name_terms`)
    and single capitalised words that are not function words.
    """
    stop = function_words()
    text = evidence_text(article)
    out: dict[str, str] = {}
    for surface, _ in name_terms(text, stop):
        out.setdefault(_fold(surface), surface)
    for surface in _CAPWORD.findall(text):
        if surface[0].isupper() and not surface.isupper() and surface.casefold() not in stop:
            out.setdefault(_fold(surface), surface)
    return out


def _story_parts(story: Union[Story, str, None], article: Article) -> tuple[Optional[str], Optional[float], Optional[str]]:
    """(story id, similarity to its centroid, joined_by) of ``article`` in ``story`` (a Story or an id)."""
    if story is None:
        return None, None, None
    if isinstance(story, str):
        return story, None, None
    for member in story.members:
        if member.article.id == article.id:
            return story.story_id, float(member.similarity), member.joined_by
    return story.story_id, None, None


def _side(article: Article, story_id, similarity, joined_by) -> dict[str, Any]:
    return {
        "id": article.id,
        "title": article.title,
        "lang": article.lang,
        "source": article.source,
        "url": article.url,
        "published": article.published.isoformat() if article.published else None,
        "story_id": story_id,
        "similarity": None if similarity is None else round(similarity, 4),
        "joined_by": joined_by,
        "has_text": bool(article.text.strip()),
    }


def _shared_names(a: Article, b: Article) -> list[str]:
    names_a, names_b = article_names(a), article_names(b)
    shared = [k for k in names_a if k in names_b]
    # A single word of a shared multi-word name says nothing more.
    multi = [set(k.split()) for k in shared if " " in k]
    keep = [k for k in shared if " " in k or not any(k in m for m in multi)]
    keep.sort(key=lambda k: (-len(k.split()), k))
    return [names_a[k] for k in keep]


def explain_pair(
    a: Article,
    b: Article,
    *,
    vector_a: Optional[np.ndarray] = None,
    vector_b: Optional[np.ndarray] = None,
    story_a: Union[Story, str, None] = None,
    story_b: Union[Story, str, None] = None,
    joined_by_a: Optional[str] = None,
    joined_by_b: Optional[str] = None,
) -> dict[str, Any]:
    """The evidence linking articles ``a`` and ``b``, as a JSON-ready dict.

    ``vector_a``/``vector_b`` are the articles' vectors in the language-neutral space (their
    cosine is reported; None leaves ``cosine`` null); ``story_a``/``story_b`` their stories (a
    :class:`Story`, which also gives each member's similarity and ``joined_by``, or a story id);
    ``joined_by_a``/``joined_by_b`` override the step that put each in its story.

    Keys: ``a``, ``b`` (id, title, lang, source, url, published, story_id, similarity, joined_by,
    has_text), ``cosine``, ``numbers`` (``shared``, ``only_a``, ``only_b``, canonical),
    ``shared_names``, ``time_gap_hours`` (b minus a; null unless both are dated), ``same_story``
    (null unless both stories are known), ``duplicate`` (one is marked a near-duplicate of the
    other, or the texts are identical), ``text_evidence`` (``text`` or ``titles``: what numbers and
    names were read from).
    """
    sid_a, sim_a, step_a = _story_parts(story_a, a)
    sid_b, sim_b, step_b = _story_parts(story_b, b)
    cosine = None
    if vector_a is not None and vector_b is not None:
        va, vb = np.asarray(vector_a, dtype=np.float64), np.asarray(vector_b, dtype=np.float64)
        denom = float(np.linalg.norm(va) * np.linalg.norm(vb))
        cosine = round(float(va @ vb) / denom, 4) if denom > 0 else 0.0
    nums_a, nums_b = number_tokens(evidence_text(a)), number_tokens(evidence_text(b))
    set_a, set_b = set(nums_a), set(nums_b)
    ordered = lambda nums, keep: list(dict.fromkeys(n for n in nums if n in keep))
    gap = None
    if a.published and b.published:
        gap = round((b.published - a.published).total_seconds() / 3600.0, 2)
    both_text = bool(a.text.strip()) and bool(b.text.strip())
    return {
        "a": _side(a, sid_a, sim_a, joined_by_a or step_a),
        "b": _side(b, sid_b, sim_b, joined_by_b or step_b),
        "cosine": cosine,
        "numbers": {
            "shared": ordered(nums_a, set_b),
            "only_a": ordered(nums_a, set_a - set_b),
            "only_b": ordered(nums_b, set_b - set_a),
        },
        "shared_names": _shared_names(a, b),
        "time_gap_hours": gap,
        "same_story": (sid_a == sid_b) if sid_a is not None and sid_b is not None else None,
        "duplicate": a.duplicate_of == b.id or b.duplicate_of == a.id or (both_text and a.hash == b.hash),
        "text_evidence": "text" if both_text else "titles",
    }


def format_gap(hours: float) -> str:
    """A time gap for people: ``3 h``, ``1 d 4 h``, ``25 min``."""
    minutes = int(round(abs(hours) * 60))
    days, rest = divmod(minutes, 24 * 60)
    h, m = divmod(rest, 60)
    if days:
        return f"{days} d {h} h" if h else f"{days} d"
    if h:
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{m} min"


def _line(side: dict, tag: str) -> str:
    bits = [f"{tag}  {side['id']}"]
    if side.get("lang"):
        bits.append(f"[{side['lang']}]")
    bits.append(side.get("title") or "(no title)")
    extra = [x for x in (side.get("source"), _short_date(side.get("published"))) if x]
    if extra:
        bits.append("(" + ", ".join(extra) + ")")
    return " ".join(bits)


def _short_date(value: Optional[str]) -> Optional[str]:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return value


def _list(items: list[str], limit: int = 12) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def format_explanation(d: dict[str, Any]) -> str:
    """Plain text of an :func:`explain_pair` result, one fact per line."""
    a, b = d["a"], d["b"]
    rows: list[tuple[str, str]] = []
    cosine = d.get("cosine")
    rows.append(("cosine (language-neutral)", f"{cosine:.3f}" if cosine is not None else
                 "unknown (no vectors: use --state, or --model to embed)"))
    nums = d["numbers"]
    rows.append((f"shared numbers ({len(nums['shared'])})", _list(nums["shared"])))
    if nums["only_a"] or nums["only_b"]:
        rows.append(("numbers only in A / B", f"{_list(nums['only_a'], 6)} / {_list(nums['only_b'], 6)}"))
    rows.append((f"shared names ({len(d['shared_names'])})", _list(d["shared_names"])))
    gap = d.get("time_gap_hours")
    if gap is None:
        rows.append(("time gap", "unknown (an article has no date)"))
    else:
        rows.append(("time gap", format_gap(gap) + ("" if gap == 0 else " (B after A)" if gap > 0 else " (A after B)")))
    if d.get("duplicate"):
        rows.append(("duplicate", "yes: one is a copy of the other"))
    same = d.get("same_story")
    if same is None:
        story = "unknown" + (f" (A in {a['story_id']})" if a.get("story_id") else "") + (
            f" (B in {b['story_id']})" if b.get("story_id") else "")
    elif same:
        story = f"same story {a['story_id']}"
    else:
        story = f"different stories: A in {a['story_id']}, B in {b['story_id']}"
    rows.append(("story", story))
    for tag, side in (("A", a), ("B", b)):
        if side.get("story_id"):
            how = side.get("joined_by") or "unknown"
            sim = side.get("similarity")
            rows.append((f"{tag} joined by", how + (f" (similarity to centroid {sim:.3f})" if sim is not None else "")))
    correction = d.get("correction")
    if correction:
        names = ", ".join(f"#{c.get('id', '?')}" + (f" ({c['note']})" if c.get("note") else "")
                          for c in correction["corrections"])
        rows.append(("editor", ("linked: one story by correction " if correction["decides"] == "link"
                                else "unlinked: never one story, by correction ") + names))
    if d.get("text_evidence") == "titles":
        rows.append(("note", "numbers and names read from titles only (no article text in the input)"))
    width = max(len(k) for k, _ in rows)
    lines = [_line(a, "A"), _line(b, "B"), ""]
    lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines)


def cosine_from_model(a: Article, b: Article, embedder) -> float:
    """Cosine of ``a`` and ``b`` in the language-neutral space, embedding both with ``embedder``.

    The language means are the shipped calibration corpus's reference means (what a first night
    starts from), so the value is close to, not identical with, what a long-running state holds.
    """
    from .cluster import ClusterOptions, StoryClusterer
    from .embed import embed_articles
    from .pipeline import starting_language_means

    options = ClusterOptions()
    X = np.asarray(embed_articles([a, b], embedder), dtype=np.float32)
    clusterer = StoryClusterer(options, language_means=starting_language_means(embedder, options))
    Z = clusterer.neutralize(X, [a.lang, b.lang])
    na, nb = float(np.linalg.norm(Z[0])), float(np.linalg.norm(Z[1]))
    return float(Z[0] @ Z[1]) / (na * nb) if na > 0 and nb > 0 and math.isfinite(na * nb) else 0.0


def member_evidence(story: Story) -> dict[str, dict[str, Any]]:
    """``{article id: evidence}`` for every member of ``story`` (``cluster``/``run --explain``).

    Each member is compared with the story's most central member (the headline's, the *anchor*):
    ``similarity`` is its cosine to the story centroid in the language-neutral space (what the
    clusterer decided on, without the number bonus), ``shared_numbers`` and ``shared_names`` what it
    shares with the anchor, ``time_gap_hours`` how long after the anchor it was published (null
    unless both are dated), ``joined_by`` the step that put it in the story. The anchor's own entry
    has ``anchor: null``.
    """
    if not story.members:
        return {}
    anchor = max(story.members, key=lambda m: (m.similarity, m.article.title is not None)).article
    out: dict[str, dict[str, Any]] = {}
    for m in story.members:
        entry: dict[str, Any] = {"similarity": round(float(m.similarity), 4), "joined_by": m.joined_by,
                                 "anchor": None if m.article.id == anchor.id else anchor.id}
        if m.article.id != anchor.id:
            d = explain_pair(anchor, m.article)
            entry.update(shared_numbers=d["numbers"]["shared"], shared_names=d["shared_names"],
                         time_gap_hours=d["time_gap_hours"], duplicate=d["duplicate"])
        out[m.article.id] = entry
    return out
