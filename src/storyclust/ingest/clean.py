"""Plain-text wires: title, date line, byline, and a body without scraper junk.

Scraped wires carry repeated paragraphs, comment prompts, share/read-more
lines, bylines and agency sign-offs. :func:`clean_body` removes them line by
line (keeping the story's own sentences untouched); :func:`parse_plain_text`
also splits off the title and a date line.

The rules are deliberately conservative: a line is dropped only when it is
short *and* matches a known junk phrase or shape, so real sentences that
happen to contain "share" or "comment" stay.

Text here is hostile input, so every pattern's worst case is linear in what it
scans: no two quantifiers may match the same characters in more than a bounded
number of ways (the byline's name separators need spaces or a comma, so a word
can never also be split into names), and patterns anchored at the end of a
paragraph only scan its last :data:`_SIGNOFF_SPAN` characters.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

__all__ = [
    "PlainText",
    "parse_plain_text",
    "clean_body",
    "clean_title",
    "parse_date_line",
    "numeric_date_order",
    "warm_up",
]

#: Lines longer than this are never junk or bylines (except a wholly parenthesised note of <= 200).
MAX_JUNK_CHARS = 120

# Whole-line junk, compared after casefolding and stripping punctuation, symbols and counts at both ends.
_JUNK_LINES = {
    # en
    "leave a comment", "leave a reply", "post a comment", "add a comment", "comments", "comment",
    "share", "share this", "share this article", "share this story", "share on facebook",
    "share on twitter", "share via email", "tweet", "email", "print", "read more", "read more here",
    "related", "related articles", "related stories", "related news", "more stories", "see also",
    "advertisement", "sponsored", "subscribe", "subscribe now", "sign up", "sign up for our newsletter",
    "subscribe to our newsletter", "follow us", "click here", "back to top", "top stories", "most read",
    "view comments", "show comments", "join the conversation", "share on x",
    # fr
    "laisser un commentaire", "laissez un commentaire", "commentaires", "commentaire", "réagir",
    "réagissez", "partager", "partager cet article", "partager sur facebook", "partager sur twitter",
    "lire aussi", "à lire aussi", "a lire aussi", "lire la suite", "voir aussi", "publicité",
    "abonnez-vous", "inscrivez-vous", "inscrivez-vous à notre newsletter", "recevez notre newsletter",
    "suivez-nous", "sur le même sujet", "les plus lus",
    "commenter", "voir les commentaires", "partager sur x",
    # id
    "tulis komentar anda", "tulis komentar", "komentar", "bagikan", "bagikan artikel ini",
    "baca juga", "baca selengkapnya", "berita terkait", "artikel terkait", "ikuti kami", "simak juga",
    "lihat juga", "terpopuler", "iklan", "berlangganan", "klik di sini",
    # es
    "deja un comentario", "dejar un comentario", "deja tu comentario", "comentarios", "comentar",
    "compartir", "comparte", "compartir en facebook", "lee también", "lea también", "leer más",
    "ver más", "noticias relacionadas", "te puede interesar", "publicidad", "suscríbete",
    "suscríbete a nuestro boletín", "síguenos", "lo más leído",
    "escribe un comentario", "escribe tu comentario", "comentar esta noticia", "ver comentarios",
    "comparte esta noticia", "comparte este artículo", "compartir esta noticia", "compartir en twitter",
    "compartir en whatsapp", "imprimir", "enviar por correo", "sigue leyendo", "seguir leyendo",
    "también te puede interesar", "más información",
    # de
    "kommentar schreiben", "kommentar verfassen", "kommentar abgeben", "kommentieren", "jetzt kommentieren",
    "artikel kommentieren", "kommentare", "kommentare anzeigen", "kommentare lesen", "diskutieren sie mit",
    "teilen", "jetzt teilen", "artikel teilen", "beitrag teilen", "auf facebook teilen", "per e-mail teilen",
    "artikel drucken", "drucken", "link kopieren", "artikel merken", "merken", "mehr zum thema",
    "lesen sie auch", "auch interessant", "das könnte sie auch interessieren", "weiterlesen", "mehr lesen",
    "anzeige", "werbung", "newsletter", "newsletter abonnieren", "jetzt abonnieren", "folgen sie uns",
    "meistgelesen",
    # it
    "lascia un commento", "lascia un tuo commento", "scrivi un commento", "commenta", "commenta la notizia",
    "commenti", "condividi", "condividi questo articolo", "condividi su facebook", "condividi su twitter",
    "stampa", "leggi anche", "leggi di più", "continua a leggere", "potrebbe interessarti",
    "ti potrebbe interessare", "articoli correlati", "notizie correlate", "pubblicità",
    "iscriviti alla newsletter", "seguici",
    # pt
    "deixe um comentário", "deixe seu comentário", "deixe o seu comentário", "comente", "comentários",
    "compartilhe", "compartilhar", "compartilhe esta notícia", "compartilhe este artigo", "partilhar",
    "partilhe", "partilhe este artigo", "leia também", "leia mais", "veja também", "saiba mais",
    "notícias relacionadas", "publicidade", "assine a newsletter", "siga-nos",
    # nl
    "reageer", "reageren", "reacties", "plaats een reactie", "geef je reactie", "deel", "delen",
    "deel dit artikel", "deel via facebook", "lees ook", "lees meer", "lees verder",
    "gerelateerde artikelen", "advertentie", "volg ons", "schrijf je in voor de nieuwsbrief",
}

# Lines that start with one of these and stay short are "read also: <other headline>" teasers.
_JUNK_PREFIX = re.compile(
    r"^(?:read more|also read|read also|see also|related|more|lire aussi|à lire aussi|a lire aussi|"
    r"voir aussi|baca juga|simak juga|lihat juga|lee también|lea también|leer también|ver también|"
    r"lesen sie auch|mehr zum thema|auch interessant|leia também|leia mais|veja também|leggi anche|"
    r"leggi di più|lees ook|lees meer)\s*[:>»|–—-]",
    re.IGNORECASE,
)

# A short paragraph wholly in parentheses: editorial notes such as "(Ajoute des détails)",
# "(Updates with ...)", agency initials such as "(wbs)", or a standalone sign-off.
_PAREN_LINE = re.compile(r"^\([^()]{1,200}\)\.?$")

# Agency sign-off at the end of the last paragraph: "(Reporting by ...; Editing by ...)".
_SIGNOFF_WORDS = (
    r"reporting|additional reporting|editing|edited|writing|written|compiled|graphics|"
    r"reportage|reportage supplémentaire|édité|edité|rédigé|rédaction|avec|version française|"
    r"reportaje|información|informacion|edición|edicion|redacción|redaccion|escrito|"
    r"berichterstattung|bericht|redigiert|bearbeitet|geschrieben|mitarbeit|"
    r"laporan|pelaporan|penyunting|reportagem|edição|texto|reporting and writing"
)
_TRAILING_SIGNOFF = re.compile(
    rf"\((?:{_SIGNOFF_WORDS})\b[^()]{{0,400}}\)\s*$",
    re.IGNORECASE,
)
#: A sign-off is at most "(" + its first word + 400 + ")" long: only this much of the end of the
#: last paragraph is searched (the unanchored search would otherwise try every "(" in it).
_SIGNOFF_SPAN = 600
# The same credits on a line of their own, without parentheses: "Reporting by Jane Doe; ...".
# Only words that cannot start an ordinary sentence followed by "by <Name>".
_SIGNOFF_LINE = re.compile(
    r"^(?i:reporting|additional reporting|editing|writing|compiled|reportage|reportage supplémentaire|"
    r"édité|edité|rédaction|reportaje|redacción|berichterstattung|redigiert|laporan|pelaporan|reportagem)"
    r"\s+(?i:by|de|par|por|von|oleh)\s+[A-ZÀ-ÖØ-Þ]"
)

# "Penulis: Budi", "Editor: ...", "Reporter: ...", "Author: ..." lines (credits, not story).
_CREDIT_LINE = re.compile(
    r"^(?:penulis|editor|redaktur|reporter|pewarta|fotografer|sumber|author|auteur|autor|autora|"
    r"photo|foto|crédit|credit|source|quelle|fuente|by-line)\s*:\s*(?P<name>.{1,80})$",
    re.IGNORECASE,
)
# A personal name: one to five capitalised words (particles such as "de", "van", "bin" allowed).
_NAME = r"[A-ZÀ-ÖØ-Þ][\w.'’-]*(?:\s+(?:[A-ZÀ-ÖØ-Þ][\w.'’-]*|de|da|van|von|der|bin|binti|al)){0,4}"
# Names are joined by a comma or by a conjunction standing as a word of its own ("Ay Ay" was
# both one name and "A" + "y" + "A"..., exponential when the match failed).
_BYLINE = re.compile(
    rf"^(?i:by|par|por|von|oleh)\s+(?P<name>{_NAME}(?:(?:\s*,\s*|\s+(?:and|et|y|und|dan)\s+){_NAME})*)"
    r"(?:\s*[,|–—-]\s*[\w ]{0,30})?$",
)

# Reuters-style status prefix of a headline: "UPDATE 2-", "MISE À JOUR 2 – ", "EXCLUSIVE-".
_TITLE_PREFIX = re.compile(
    r"^(?:UPDATE|MISE À JOUR|ACTUALISATION|ACTUALIZACIÓN|ACTUALIZA|AKTUALISIERUNG|AGGIORNAMENTO|"
    r"CORRECTED|CORRIGÉ|REFILE|RPT|EXCLUSIVE|EXCLUSIF|EXCLUSIVA|EXKLUSIV|BREAKINGVIEWS|ANALYSIS|"
    r"ANALYSE|ANÁLISIS|FACTBOX|EXPLAINER|WRAPUP|INSIGHT)(?:\s+\d+)?\s*[-–—:]\s*",
)

# Punctuation, symbols and counts at both ends: "Kommentare (12)", "3 comments", "» Teilen".
_EDGE_NONWORD = re.compile(r"^[\W\d_]+|[\W\d_]+$")


def _junk_key(line: str) -> str:
    return " ".join(_EDGE_NONWORD.sub("", line.casefold()).split())


def _is_junk(line: str) -> bool:
    """True for comment prompts, share/read-more/newsletter lines and editorial notes."""
    if len(line) > MAX_JUNK_CHARS:
        return bool(_PAREN_LINE.match(line))
    return (
        _junk_key(line) in _JUNK_LINES
        or bool(_JUNK_PREFIX.match(line))
        or bool(_PAREN_LINE.match(line))
        or bool(_SIGNOFF_LINE.match(line))
    )


def _byline_author(line: str) -> Optional[str]:
    """The name in a byline or credit line ("By Jane Doe", "Penulis: Budi"), else None."""
    if len(line) > MAX_JUNK_CHARS:
        return None
    match = _CREDIT_LINE.match(line) or _BYLINE.match(line)
    return match.group("name").strip(" .,;") if match else None


def _paragraph_key(line: str) -> str:
    return " ".join(line.casefold().split())


def clean_body(text: str) -> tuple[str, Optional[str]]:
    """Remove junk lines, bylines, sign-offs and repeated paragraphs from ``text``.

    Returns ``(body, author)``, where ``author`` is the first name found in a
    byline or credit line ("By ...", "Penulis: ..."). Paragraphs (non-empty
    lines) come back joined by single newlines, each first occurrence kept.
    The function is idempotent.
    """
    seen: set[str] = set()
    kept: list[str] = []
    author: Optional[str] = None
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or _is_junk(line):
            continue
        name = _byline_author(line)
        if name:
            author = author or name
            continue
        key = _paragraph_key(line)
        if key in seen:
            continue
        seen.add(key)
        kept.append(line)
    while kept:
        stripped = _strip_signoff(kept[-1])
        if stripped == kept[-1]:
            break
        if stripped:
            kept[-1] = stripped
            break
        kept.pop()
    return "\n".join(kept), author


def _strip_signoff(paragraph: str) -> str:
    """``paragraph`` without a trailing agency sign-off ("(Reporting by ...)"), stripped."""
    match = _TRAILING_SIGNOFF.search(paragraph, max(0, len(paragraph) - _SIGNOFF_SPAN))
    return paragraph[: match.start()].strip() if match else paragraph.strip()


def clean_title(title: Optional[str]) -> Optional[str]:
    """A headline without agency status prefixes ("UPDATE 2-") and surrounding junk."""
    if not title:
        return None
    title = " ".join(title.split())
    title = _TITLE_PREFIX.sub("", title, count=1).strip()
    return title or None


# --- date lines ------------------------------------------------------------------------

_YEAR = re.compile(r"(?<!\d)(?:19[7-9]\d|20\d\d)(?!\d)")
_DATE_SETTINGS = {
    "PREFER_DATES_FROM": "past",
    "REQUIRE_PARTS": ["day", "month", "year"],
    "STRICT_PARSING": True,
}
# A numeric date with the year last: "05.06.2026", "03/21/2026", "5-6-2026".
_NUMERIC_DATE = re.compile(r"(?<!\d)(\d{1,2})([./-])(\d{1,2})\2(?:19[7-9]\d|20\d\d)(?!\d)")
#: Languages whose slash or dash dates put the month first (US English, Filipino).
#: Dotted dates ("05.06.2026") are day-first everywhere.
_MONTH_FIRST_LANGS = frozenset({"en", "tl", "fil"})
#: How many leading words ("Published", "Jum'at,", "Publié le") may precede the date itself.
_MAX_LEADING_WORDS = 3
_MAX_DATE_LINE = 60


@functools.lru_cache(maxsize=64)
def _dateparser_languages(lang: Optional[str]) -> tuple[str, ...]:
    """Languages to parse a date line with: the text's own (if dateparser knows it), then English."""
    from dateparser.languages.loader import default_loader

    known = set(default_loader.get_locale_map().keys())
    langs = [lang] if lang and lang in known and lang != "en" else []
    return (*langs, "en")


def numeric_date_order(line: str, lang: Optional[str] = None) -> Optional[str]:
    """dateparser's ``DATE_ORDER`` ("DMY" or "MDY") for the numeric date in ``line``; None without one.

    Day first, as in most of the world, except with "/" or "-" in a language
    that writes the month first (English). A reading that is impossible (a
    month above 12) gives way to the other: "21/03/2026" is day-first even in
    English, "03/21/2026" month-first in any language.
    """
    match = _NUMERIC_DATE.search(line)
    if match is None:
        return None
    first, separator, second = int(match.group(1)), match.group(2), int(match.group(3))
    month_first = separator != "." and lang in _MONTH_FIRST_LANGS
    if month_first and first > 12 >= second:
        month_first = False
    elif not month_first and second > 12 >= first:
        month_first = True
    return "MDY" if month_first else "DMY"


def parse_date_line(line: str, lang: Optional[str] = None) -> Optional[datetime]:
    """Parse a line that is clearly a date ("Jum'at, 19 Maret 2021 - 15:05 WIB").

    Only short lines with a four-digit year are tried, and day, month and year
    must all be present, so nothing is invented. Up to three leading words
    (weekday, "Published", "Publié le"...) may precede the date. Numeric dates
    are read as :func:`numeric_date_order` says ("05.06.2026" is 5 June). A time zone
    in the line ("WIB", "GMT", "+02:00") is kept as a fixed offset; naive times
    are taken as UTC.
    """
    line = line.strip()
    if len(line) > _MAX_DATE_LINE or not _YEAR.search(line):
        return None
    import dateparser  # slow import, needed only for plain-text wires

    order = numeric_date_order(line, lang)
    settings = {**_DATE_SETTINGS, "DATE_ORDER": order} if order else _DATE_SETTINGS
    words = line.split()
    for skip in range(min(_MAX_LEADING_WORDS, len(words) - 1) + 1):
        if skip and any(ch.isdigit() for ch in words[skip - 1]):
            break
        candidate = " ".join(words[skip:]).strip(" ,|–—-")
        parsed = dateparser.parse(candidate, languages=list(_dateparser_languages(lang)), settings=settings)
        if parsed is not None:
            return _as_fixed_offset(parsed)
    return None


@functools.lru_cache(maxsize=1)
def warm_up() -> None:
    """Import dateparser and load its tables now, outside any per-document time limit."""
    parse_date_line("1 January 2020")


def _as_fixed_offset(value: datetime) -> datetime:
    """``value`` with a plain ``datetime.timezone`` (UTC when it was naive)."""
    offset = value.utcoffset()
    return value.replace(tzinfo=timezone(offset) if offset is not None else timezone.utc)


# --- plain text -----------------------------------------------------------------------

@dataclass(frozen=True)
class PlainText:
    """A plain-text wire split into its parts."""

    title: Optional[str]
    body: str
    published: Optional[datetime]
    author: Optional[str]


#: How many lines after the title may hold the date line.
_DATE_LINE_WINDOW = 3

# An agency dateline opening the lead: "PARIS, 12 mars 2026 (AFP) -", "MADRID, 17 mar. 2026 (AFN).-",
# "BEIJING, 18 mars (Reuters) –", "Santiago de Chile (dpa) –". Place: capitalised words (a few
# lowercase particles allowed); then an optional date after a comma; the agency in parentheses; a dash.
_PLACE_WORD = r"[A-ZÀ-ÖØ-Þ][\w'’./-]*"
_PLACE_PARTICLE = r"(?:de|del|de la|da|do|dos|das|di|la|las|los|le|les|el|al|am|an|der|im|sur|upon|on)"
_DATELINE = re.compile(
    rf"^{_PLACE_WORD}(?:\s+(?:{_PLACE_WORD}|{_PLACE_PARTICLE})){{0,5}}"
    r"(?:\s*,\s*(?P<date>[^()]{3,40}?))?"
    r"\s*\([A-Za-z][\w&.'’ /-]{0,29}\)"
    r"\s*(?:\.\s*)?[-–—]+\s*"  # not \s*\.?\s*: quadratic on a run of spaces
)
#: A dateline is looked for in the first this-many characters of a paragraph only (a real one
#: is under 150), so a huge paragraph costs nothing: the pattern is anchored but backtracks a
#: few times over whatever whitespace follows the agency.
_DATELINE_SPAN = 300


def _dateline(paragraph: str) -> Optional[tuple[Optional[str], str]]:
    """``(date text or None, rest of the paragraph)`` when ``paragraph`` opens with an agency dateline."""
    match = _DATELINE.match(paragraph[:_DATELINE_SPAN])
    if match is None:
        return None
    return match.group("date"), paragraph[match.end():]


def _dateline_lead(paragraphs: list[str], lang: Optional[str]) -> tuple[list[str], Optional[datetime]]:
    """Find an agency dateline in the first paragraphs: ``(paragraphs, its date)``.

    The date counts only when it has a year. A dateline standing alone on its
    line is joined to the paragraph after it, so the lead reads as on the wire
    ("STRASBOURG, 10 février 2026 (AFN) - Le Parlement..."); nothing is dropped.
    """
    for i, paragraph in enumerate(paragraphs[:_DATE_LINE_WINDOW]):
        found = _dateline(paragraph)
        if found is None:
            continue
        date, rest = found
        published = parse_date_line(date, lang) if date else None
        if not rest and i + 1 < len(paragraphs):
            paragraphs = [*paragraphs[:i], f"{paragraph} {paragraphs[i + 1]}", *paragraphs[i + 2 :]]
        return paragraphs, published
    return paragraphs, None


def parse_plain_text(text: str, lang: Optional[str] = None) -> PlainText:
    """Split a plain-text wire: first non-empty line = title, an optional date line, then body.

    ``lang`` (the detected language) guides date parsing. A date line is
    removed from the body when parsed. An agency dateline ("BEIJING, 18 mars
    (Reuters) –") stays at the start of the lead paragraph (joined to it when it
    stands on a line of its own); its date is ``published`` when no date line
    gave one and it has a year.
    """
    lines = [line.strip() for line in text.split("\n")]
    nonempty = [i for i, line in enumerate(lines) if line]
    if not nonempty:
        return PlainText(None, "", None, None)
    title_at = nonempty[0]
    title = clean_title(lines[title_at])
    published = None
    for i in nonempty[1 : 1 + _DATE_LINE_WINDOW]:
        if _dateline(lines[i]) is not None:
            break  # the story starts here
        published = parse_date_line(lines[i], lang)
        if published is not None:
            lines[i] = ""
            break
    body, author = clean_body("\n".join(lines[title_at + 1 :]))
    paragraphs, dateline_date = _dateline_lead(body.split("\n"), lang)
    return PlainText(title, "\n".join(paragraphs), published or dateline_date, author)
