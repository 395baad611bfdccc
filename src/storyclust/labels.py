"""Story labels: a few keywords that say what each story is about.

:func:`story_labels` scores terms by class-based TF-IDF (c-TF-IDF): every story of the batch is one
class, a term's weight in a story is how many of the story's members carry it (a title counts
twice) over the story's size, times ``log(1 + A / f)`` where ``f`` is the term's weight over the
whole batch and ``A`` the average weight of a story. A term that every story has (this year,
"government") weighs little; a term only this story has weighs much.

Terms come in three kinds, scored together so that one ranking merges them:

* **words**, tagged with their article's language, so that IDF is computed per language (``gift``
  in German and in English are two terms). Text is split by script: runs of letters (Latin,
  Cyrillic, Greek, Arabic, Hebrew, Devanagari... with their combining marks) are words; Chinese,
  Japanese and Thai, written without spaces, become character bigrams (those that recur in an
  article: a bigram straddling two words rarely does). Function words are those of
  a small built-in list plus those that recur in the shipped calibration corpus (18 languages);
* **names**: capitalised multi-word names (``Kartika Wulandari``, ``European Parliament``) and
  acronyms (``CEPA``, ``EMA``), language-neutral, so the French and the Indonesian copies of a story
  add up; they weigh a little more than words;
* **numbers**, canonicalised as :mod:`storyclust.evidence` does (``20 000`` = ``20.000`` =
  ``20,000``), so a death toll or a magnitude shared across languages is one term.

No network, no model; deterministic (ties break on the term's first appearance, then its text).
Only each member's title and the first :data:`TEXT_CHARS` characters of its text are read: leads
carry the story, and 10,000 stories label in a few seconds.
"""
from __future__ import annotations

import json
import math
import re
import struct
import sys
import unicodedata
import zlib
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import resources
from typing import Optional

import numpy as np

from .evidence import number_tokens
from .types import Article, Story

#: Characters of each member's text read for labels (after the title).
TEXT_CHARS = 1500

#: Extra weight of a name (multi-word capitalised name, acronym) over a word.
NAME_BOOST = 1.2
#: Weight of a number relative to a word (numbers say less on their own than a name).
NUMBER_BOOST = 0.8


def _chars(predicate) -> str:
    """All BMP characters for which ``predicate`` holds, as an escaped regex class body."""
    return "".join(re.escape(chr(c)) for c in range(0x80, 0x10000) if predicate(chr(c)))


_MARKS = _chars(lambda c: unicodedata.category(c) in ("Mn", "Mc", "Me"))
_UPPER = "A-Z" + _chars(str.isupper)
#: Scripts written without spaces between words: Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar.
_UNSPACED = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0eff\u1780-\u17ff\u1000-\u109f"
_UNSPACED_RUN = re.compile(f"[{_UNSPACED}]{{2,}}")
_HIRAGANA = re.compile("^[\u3040-\u309f]+$")
#: A word: letters (and their marks), hyphenated parts kept together; apostrophes split (l'accord).
_LETTER = f"(?:[^\\W\\d_{_UNSPACED}]|[{_MARKS}])"
_WORD = re.compile(f"{_LETTER}+(?:-{_LETTER}+)*")
#: A capitalised word (not all upper case: acronyms are separate); used to build names.
_CAP = f"[{_UPPER}][^\\W\\d_{_UPPER}{_UNSPACED}]+(?:-[{_UPPER}]?[^\\W\\d_{_UNSPACED}]+)*"
#: Two to four capitalised words separated by single spaces, or joined by a lower-case particle.
_NAME = re.compile(f"(?<![\\w-]){_CAP}(?:[ \u00a0](?:(?:de|da|van|von|al|el|bin|del|di) )?{_CAP}){{1,3}}(?![\\w-])")
#: An acronym: 2-5 upper-case letters, optionally with digits (COVID-19, EU); longer runs are datelines.
_ACRONYM = re.compile(f"(?<![\\w-])[{_UPPER}]{{2,5}}(?:-?\\d{{1,3}})?(?![\\w-])")

#: Function words of the languages most news comes in (the calibration corpus adds the rest).
_STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as into about after before over under
    between than then this that these those it its is are was were be been being has have had do does did
    not no yes he she they we you i his her their our your them him us who whom which what when where why
    how all any both each more most other some such only own same so too very can will just should would
    could may might must shall also said says say one two new up out off down while during against per
    mr mrs ms de la le les des du un une et ou en au aux dans par pour sur avec sans sous est sont été
    être a ont avait qui que quoi dont où ce cette ces son sa ses leur leurs il elle ils elles nous vous
    je tu on ne pas plus moins très aussi mais comme entre selon après avant depuis lors y del los las
    el lo un una unos unas y o e con sin por para según sobre entre tras desde hasta es son fue fueron ser
    ha han había su sus al se que como más muy también pero cuando donde der die das den dem des ein eine
    einer eines einem einen und oder aber nicht mit von zu zum zur im am an auf aus bei für nach seit über
    unter vor ist sind war waren wird werden wurde wurden hat haben hatte sich auch noch nur schon als wie
    er sie es wir ihr dass yang dan di ke dari dengan untuk pada dalam ini itu tidak akan telah sudah juga
    atau oleh bagi karena sebagai adalah ia mereka kami kita tersebut para saat serta bahwa il lo gli i
    della delle degli dei nel nella con per tra fra che non è sono ha hanno anche come più o os as do da
    dos das no na nos nas em um uma é são foi com por para pelo pela mais mas como het een van en op te
    dat niet met voor zijn wordt werd и в во на не что с со по к ко из за от до о об а но как это для
    же ли бы был была были быть он она они мы вы его ее их также при после
    monday tuesday wednesday thursday friday saturday sunday january february march april may june july
    august september october november december jan feb mar apr jun jul aug sep sept oct nov dec
    lundi mardi mercredi jeudi vendredi samedi dimanche janvier février mars avril mai juin juillet août
    septembre octobre novembre décembre lunes martes miércoles jueves viernes sábado domingo enero febrero
    marzo abril mayo junio julio agosto septiembre octubre noviembre diciembre montag dienstag mittwoch
    donnerstag freitag samstag sonntag januar februar märz juni juli oktober dezember senin selasa rabu
    kamis jumat sabtu minggu januari februari maret mei agustus oktober desember""".split()
)


@lru_cache(maxsize=1)
def _background_stopwords() -> frozenset[str]:
    """Words that recur (in 2+ of 12 texts of one language) in the shipped calibration corpus."""
    seen: dict[tuple[str, str], int] = {}
    try:
        text = resources.files("storyclust").joinpath("calibration.jsonl").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):  # pragma: no cover - the file ships with the package
        return frozenset()
    for line in text.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        lang = record.get("lang") or ""
        for term in {t for _, t in _word_terms(record.get("text") or "")}:
            seen[lang, term] = seen.get((lang, term), 0) + 1
    return frozenset(term for (_, term), n in seen.items() if n >= 2)


def _word_terms(text: str) -> list[tuple[str, str]]:
    """``(surface, term)`` pairs of ``text``'s words: letter runs, and bigrams of unspaced scripts."""
    out = []
    for surface in _WORD.findall(text):
        if len(surface) >= 2:
            out.append((surface, surface.casefold()))
    for run in _UNSPACED_RUN.findall(text):
        for i in range(len(run) - 1):
            gram = run[i:i + 2]
            if not _HIRAGANA.match(gram):  # kana particles and endings say nothing
                out.append((gram, gram))
    return out


def _recurring_grams(title: str, text: str) -> Optional[tuple[set[str], set[str]]]:
    """(all bigrams, recurring bigrams) of an article's unspaced-script text; None if it has none.

    Without a word segmenter, a bigram that straddles two words (川发 in 四川发生) is noise; a real
    word recurs. So a bigram counts only when it occurs twice or more in the member (title and
    text together), or when the member has no text to recur in.
    """
    if not (_UNSPACED_RUN.search(title) or _UNSPACED_RUN.search(text)):
        return None
    counts: dict[str, int] = {}
    for run in _UNSPACED_RUN.findall(title) + _UNSPACED_RUN.findall(text):
        for i in range(len(run) - 1):
            counts[run[i:i + 2]] = counts.get(run[i:i + 2], 0) + 1
    if not text.strip():
        return set(counts), set(counts)
    return set(counts), {g for g, n in counts.items() if n >= 2}


def function_words() -> frozenset[str]:
    """Casefolded words that say nothing about a story: a built-in list of function words, weekdays and
    months of the languages most news comes in, plus the words that recur in the shipped calibration
    corpus (18 languages). Labels skip them; :mod:`storyclust.explain` does not count them as names."""
    return _STOPWORDS | _background_stopwords()


def name_terms(text: str, stopwords: Optional[frozenset[str]] = None) -> list[tuple[str, str]]:
    """``(surface, key)`` of the names in ``text``: capitalised multi-word names and acronyms.

    Function words at either end of a name are dropped ("Le Parlement européen" gives no name,
    "Selon Kartika Wulandari" gives "Kartika Wulandari"); the key is the casefolded name.

    >>> [s for s, _ in name_terms("Le jury a salué Kartika Wulandari (EMA, COVID-19).")]
    ['Kartika Wulandari', 'EMA', 'COVID-19']
    """
    stop = function_words() if stopwords is None else stopwords
    out = []
    for match in _NAME.finditer(text):
        words = match.group(0).replace("\u00a0", " ").split(" ")
        while words and words[0].casefold() in stop:
            words.pop(0)
        while words and words[-1].casefold() in stop:
            words.pop()
        if len(words) >= 2:
            name = " ".join(words)
            out.append((name, name.casefold()))
    for match in _ACRONYM.finditer(text):
        surface = match.group(0)
        if surface.casefold() not in stop:
            out.append((surface, surface.casefold()))
    return out


#: A member's terms: ``{key: (weight, surface)}`` in order of first appearance; keys are ``("w", lang,
#: word)``, ``("e", name)`` and ``("n", number)``, the weight 2 when the title has the term, else 1.
MemberTerms = dict[tuple, tuple[float, str]]

#: Format of :func:`pack_terms`' bytes; a stored blob of another format is computed again.
TERMS_FORMAT = b"t1"


def member_terms(article: Article, stop: Optional[frozenset[str]] = None) -> MemberTerms:
    """What one member brings to its story's labels (:data:`MemberTerms`), from its title and the
    first :data:`TEXT_CHARS` characters of its text; a term counts once per member."""
    stop = function_words() if stop is None else stop
    lang = article.lang or ""
    present: MemberTerms = {}
    recurring = _recurring_grams(article.title or "", article.text[:TEXT_CHARS])
    for part, factor in ((article.title or "", 2.0), (article.text[:TEXT_CHARS], 1.0)):
        if not part:
            continue
        found: dict[tuple, str] = {}
        for surface, term in _word_terms(part):
            if term in stop or (recurring is not None and term in recurring[0] and term not in recurring[1]):
                continue
            key = ("w", lang, term)
            if key not in found or surface == term:
                found[key] = surface
        if factor == 1.0 or not article.text:  # titles are often Title Cased: not names
            for surface, term in name_terms(part, stop):
                found.setdefault(("e", term), surface)
        for number in number_tokens(part):
            if len(number.replace(".", "")) >= 2:
                found.setdefault(("n", number), number)
        for key, surface in found.items():
            old = present.get(key)
            if old is None:
                present[key] = (factor, surface)
            elif surface == key[-1] and old[1] != surface:
                present[key] = (old[0], surface)  # prefer the lower-case form of a word
    return present


def pack_terms(terms: MemberTerms) -> bytes:
    """:func:`member_terms`' result as compact bytes (the state keeps them, so that a member's text is
    not tokenised again every night its story changes); the language is the article's, not stored."""
    rows = [[key[0], key[-1], int(weight), "" if surface == key[-1] else surface]
            for key, (weight, surface) in terms.items()]
    return TERMS_FORMAT + zlib.compress(json.dumps(rows, ensure_ascii=False, separators=(",", ":")).encode(), 1)


def unpack_terms(blob: bytes, lang: Optional[str]) -> Optional[MemberTerms]:
    """:func:`pack_terms`' bytes back, for an article in ``lang``; None for bytes of another format."""
    if not blob.startswith(TERMS_FORMAT):
        return None
    lang = lang or ""
    return {(kind, lang, term) if kind == "w" else (kind, term): (float(weight), surface or term)
            for kind, term, weight, surface in json.loads(zlib.decompress(blob[len(TERMS_FORMAT):]))}


#: Format of :meth:`TermTable.pack`'s bytes; a stored table of another format is summed again.
TABLE_FORMAT = b"s2"
#: Joins a term key's parts (kind, language for words, term) into one string: terms never contain it.
_KEY_SEP = "\x1f"
#: Separates a packed table's keys and surfaces.
_ROW_SEP = "\x1e"
_BOOST = {"e": NAME_BOOST, "n": NUMBER_BOOST, "w": 1.0}


def _term(key: str) -> str:
    """The term of a table key (its last part): the lower-case form a label is shown in, unless written otherwise."""
    return key[key.rfind(_KEY_SEP) + 1:]


class TermTable:
    """What a story's members bring to its labels, summed: the story's class in c-TF-IDF.

    Per term: its weight (the members that carry it, titles double, as :func:`member_terms` counts
    one member), the form shown (the lower-case form when a member writes it so, else the form of the
    first member that has it) and where it first appears (that member's ``rank``, then the term's place
    among the member's terms), which breaks ties between equal scores. A member's ``rank`` is its
    position in the story, or any order key (the nightly state uses :func:`storyclust.pipeline.first_key`):
    members may come in any order and the table is the one of the story in rank order.

    Adding a member costs its own terms, whatever the story's size, so the nightly state keeps each
    story's table (:meth:`pack`) and adds only the members a night brings. The table is kept by columns
    (one list per field, a term's key a plain string), so that packing, unpacking and scoring a story of
    thousands of terms cost a few list and array operations rather than an object per term.
    """

    __slots__ = ("size", "keys", "weights", "surfaces", "ranks", "rank_of", "positions", "_index", "_rank_ids")

    def __init__(self) -> None:
        self.size = 0  # members added
        self.keys: list[str] = []  # per term: kind, language (words only) and term, joined by _KEY_SEP
        self.weights: list[float] = []
        self.surfaces: list[str] = []  # the form shown, "" when it is the term itself
        self.ranks: list = []  # the members' ranks that terms first appear in
        self.rank_of: list[int] = []  # per term: its first member's rank, as an index into ranks
        self.positions: list[int] = []  # per term: its place among that member's terms
        self._index: Optional[dict[str, int]] = None  # key -> row, built when a member is added
        self._rank_ids: Optional[dict] = None  # rank -> index into ranks

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, terms: MemberTerms, rank) -> None:
        """Count one member's terms (:func:`member_terms`); ``rank`` orders it among the story's members."""
        if self._index is None:
            self._index = {key: row for row, key in enumerate(self.keys)}
            self._rank_ids = {r: i for i, r in enumerate(self.ranks)}
        index, rank_ids = self._index, self._rank_ids
        r = rank_ids.get(rank)
        if r is None:
            r = rank_ids[rank] = len(self.ranks)
            self.ranks.append(rank)
        self.size += 1
        keys, weights, surfaces, ranks, rank_of, positions = (
            self.keys, self.weights, self.surfaces, self.ranks, self.rank_of, self.positions)
        for position, (key, (weight, surface)) in enumerate(terms.items()):
            lower = key[-1]
            shown = "" if surface == lower else surface
            joined = _KEY_SEP.join(key)
            row = index.get(joined)
            if row is None:
                index[joined] = len(keys)
                keys.append(joined)
                weights.append(weight)
                surfaces.append(shown)
                rank_of.append(r)
                positions.append(position)
                continue
            weights[row] += weight
            if (rank, position) < (ranks[rank_of[row]], positions[row]):  # an earlier member: its form,
                rank_of[row], positions[row] = r, position                # unless a lower-case one was seen
                if surfaces[row]:
                    surfaces[row] = shown
            if not shown:
                surfaces[row] = ""

    def pack(self) -> bytes:
        """Compact bytes (:meth:`unpack`); weights are whole (members count 1, titles 2)."""
        used, rank_of = np.unique(np.asarray(self.rank_of, dtype=np.int64), return_inverse=True)
        head = json.dumps({"n": self.size, "r": [list(r) if isinstance(r, tuple) else r
                                                 for r in (self.ranks[i] for i in used.tolist())]},
                          ensure_ascii=False, separators=(",", ":")).encode()
        keys = _ROW_SEP.join(self.keys).encode()
        surfaces = _ROW_SEP.join(self.surfaces).encode()
        columns = np.array([self.weights, rank_of.reshape(-1), self.positions], dtype="<i4").reshape(3, -1)
        body = struct.pack("<4I", len(self.keys), len(head), len(keys), len(surfaces))
        return TABLE_FORMAT + zlib.compress(body + head + keys + surfaces + columns.tobytes(), 1)

    @classmethod
    def unpack(cls, blob: Optional[bytes]) -> Optional["TermTable"]:
        """:meth:`pack`'s bytes back; None for None or bytes of another format."""
        if blob is None or not blob.startswith(TABLE_FORMAT):
            return None
        body = zlib.decompress(blob[len(TABLE_FORMAT):])
        n, head, keys, surfaces = struct.unpack_from("<4I", body)
        at = struct.calcsize("<4I")
        header = json.loads(body[at:at + head])
        at += head
        table = cls()
        table.size = header["n"]
        table.ranks = [tuple(r) if isinstance(r, list) else r for r in header["r"]]
        if n:
            table.keys = body[at:at + keys].decode().split(_ROW_SEP)
            table.surfaces = body[at + keys:at + keys + surfaces].decode().split(_ROW_SEP)
            columns = np.frombuffer(body, dtype="<i4", count=3 * n, offset=at + keys + surfaces).reshape(3, n)
            table.weights, table.rank_of, table.positions = (c.tolist() for c in columns)
        return table


def story_labels(stories: Sequence[Story], *, top_k: int = 5,
                 terms: Optional[Callable[[Article], MemberTerms]] = None) -> dict[str, tuple[str, ...]]:
    """``{story_id: labels}``: up to ``top_k`` keywords per story, most telling first.

    Each story is scored against the others in ``stories`` (class-based TF-IDF, see the module
    docstring), so label a whole batch at once: a story labelled alone has nothing to be told
    apart from. A label is shown as written in the articles (a word that also appears in lower
    case is shown in lower case; names and acronyms keep their capitals; numbers are canonical:
    ``20000``, ``6.4``). Words that are part of a chosen name are not repeated.

    ``terms`` gives a member's terms (default :func:`member_terms`). A member's terms are used and
    dropped, never held for the whole batch.
    """
    stop = function_words()
    terms = terms or (lambda article: member_terms(article, stop))
    tables = []
    for story in stories:
        table = TermTable()
        if top_k > 0:
            for rank, member in enumerate(story.members):
                table.add(terms(member.article), rank)
        tables.append((story.story_id, table))
    return table_labels(tables, top_k=top_k)


def table_labels(tables: Sequence[tuple[str, TermTable]], *, top_k: int = 5) -> dict[str, tuple[str, ...]]:
    """``{story_id: labels}`` of stories given by their :class:`TermTable`, each scored against the others
    (:func:`story_labels` on the stories the tables were summed from gives the same labels)."""
    if top_k <= 0:
        return {sid: () for sid, _ in tables}
    batch: dict[str, float] = {}
    get = batch.get
    for _, table in tables:
        for key, weight in zip(table.keys, table.weights):
            batch[key] = get(key, 0.0) + weight
    average = sum(batch.values()) / len(tables) if tables else 0.0
    out: dict[str, tuple[str, ...]] = {}
    for sid, table in tables:
        n = len(table.keys)
        weights = np.fromiter(table.weights, dtype=np.float64, count=n)
        across = np.fromiter(map(batch.__getitem__, table.keys), dtype=np.float64, count=n)
        boost = np.fromiter((_BOOST[key[0]] for key in table.keys), dtype=np.float64, count=n)
        score = np.round(boost * (weights / max(1, table.size)) * np.log(1.0 + average / across), 9)
        rank_order = np.empty(len(table.ranks), dtype=np.int64)  # each rank's place among the ranks
        rank_order[sorted(range(len(table.ranks)), key=table.ranks.__getitem__)] = np.arange(len(table.ranks))
        first_seen = rank_order[np.asarray(table.rank_of, dtype=np.int64)] if n else np.zeros(0, dtype=np.int64)
        ranked = np.lexsort((np.asarray(table.positions, dtype=np.int64), first_seen, -score))
        out[sid] = _pick(table, ranked.tolist(), top_k)
    return out


_GRAM = re.compile(f"^[{_UNSPACED}]{{2}}$")


def _is_gram(label: str) -> bool:
    return bool(_GRAM.match(label))


def _pick(table: TermTable, ranked: list[int], top_k: int) -> tuple[str, ...]:
    """The first ``top_k`` labels of a ranking (``table``'s rows, best first), without words already said
    by a chosen name.

    At most 2/5 of the labels are numbers and 3/5 names while there are other candidates, so that
    a story with a long vote count still gets a word or two.
    """
    caps = {"n": max(1, top_k * 2 // 5), "e": max(1, -(-top_k * 3 // 5)), "w": top_k}
    chosen: list[tuple[int, str, str, set[str]]] = []  # (place in the ranking, label, kind, its words)
    for capped in (True, False):
        for place, row in enumerate(ranked):
            if len(chosen) == top_k:
                break
            key = table.keys[row]
            kind = key[0]
            if capped and sum(1 for c in chosen if c[2] == kind) >= caps[kind]:
                continue
            if any(c[0] == place for c in chosen):
                continue
            term = _term(key)
            label = table.surfaces[row] or term
            words = set(label.casefold().split())
            if kind == "w" and any(term in c[3] for c in chosen):
                continue  # a word of a name already chosen
            if kind == "w" and _is_gram(label) and any(
                    _is_gram(c[1]) and (c[1][1] == label[0] or c[1][0] == label[1]) for c in chosen):
                continue  # 京地 after 北京: a bigram straddling a word already chosen
            if kind == "e":
                if any(words <= c[3] for c in chosen):
                    continue
                # a name replaces the words (and shorter names) it contains that were chosen before it
                chosen = [c for c in chosen if not c[3] <= words]
            if label.casefold() in (c[1].casefold() for c in chosen):
                continue
            chosen.append((place, label, kind, words))
    return tuple(label for _, label, _, _ in sorted(chosen))


if __name__ == "__main__":  # pragma: no cover - quick look: python -m storyclust.labels stories.jsonl
    from .schema import iter_jsonl, record_to_story

    with open(sys.argv[1], encoding="utf-8") as fh:
        loaded = [record_to_story(r) for _, r, _ in iter_jsonl(fh) if r]
    for sid, labels in story_labels(loaded).items():
        print(sid, ", ".join(labels))
