"""Plain-text wires: agency datelines, numeric date order, comment/share junk, and the sample corpus."""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from storyclust.ingest import IngestOptions, ingest_paths
from storyclust.ingest.clean import clean_body, numeric_date_order, parse_date_line, parse_plain_text
from storyclust.types import Article

SAMPLE_WIRES = Path(__file__).resolve().parents[1] / "data" / "samples" / "wires"
LEAD_FR = "Le Parlement européen a donné mardi son feu vert à l'accord commercial avec l'Indonésie."
LEAD_ES = "La Guardia Civil ha desarticulado una organización que introducía cocaína por Algeciras."


# --- agency datelines ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dateline", "lang", "lead", "expected"),
    [
        ("STRASBOURG, 10 février 2026 (AFN) -", "fr", LEAD_FR, date(2026, 2, 10)),
        ("MADRID, 17 mar. 2026 (AFN).-", "es", LEAD_ES, date(2026, 3, 17)),
        ("AMSTERDAM, 24 avril 2026 (AFN) -", "fr", LEAD_FR, date(2026, 4, 24)),
        ("PARIS, 12 mars 2026 (AFP) -", "fr", LEAD_FR, date(2026, 3, 12)),
        ("BEIJING, 18 mars (Reuters) –", "fr", LEAD_FR, None),  # no year: no date invented
        ("Santiago de Chile (dpa) –", "de", "Ein Erdbeben der Stärke 6,3 hat den Norden Chiles erschüttert.", None),
    ],
)
def test_dateline_on_its_own_line_opens_the_lead(
    dateline: str, lang: str, lead: str, expected: date | None
) -> None:
    text = f"Headline of the story\n{dateline}\n\n{lead}\n\nSecond paragraph of the story."
    wire = parse_plain_text(text, lang)
    assert wire.title == "Headline of the story"
    assert wire.body.split("\n") == [f"{dateline} {lead}", "Second paragraph of the story."]
    assert (wire.published.date() if wire.published else None) == expected
    if wire.published is not None:
        assert wire.published.tzinfo is not None


@pytest.mark.parametrize(
    ("lead", "expected"),
    [
        ("BEIJING, 18 mars (Reuters) – Les régulateurs chinois ont convoqué 11 entreprises.", None),
        ("PARIS, 12 mars 2026 (AFP) - Le gouvernement a présenté son budget.", date(2026, 3, 12)),
        ("WASHINGTON, March 3, 2026 (AP) — The Senate passed the bill late on Tuesday.", date(2026, 3, 3)),
    ],
)
def test_dateline_inside_the_first_paragraph_stays_there(lead: str, expected: date | None) -> None:
    wire = parse_plain_text(f"Headline\n\n{lead}\nMore of the story.", "en" if "AP" in lead else "fr")
    assert wire.body == f"{lead}\nMore of the story."
    assert (wire.published.date() if wire.published else None) == expected


def test_date_line_wins_over_the_dateline_and_both_texts_are_handled() -> None:
    text = (
        "Headline\nPublié le jeudi 12 mars 2026 à 15h05\n"
        "PARIS, 12 mars 2026 (AFP) -\nLe gouvernement a présenté son budget."
    )
    wire = parse_plain_text(text, "fr")
    assert wire.published == datetime(2026, 3, 12, 15, 5, tzinfo=timezone.utc)
    assert wire.body == "PARIS, 12 mars 2026 (AFP) - Le gouvernement a présenté son budget."


def test_lone_dateline_without_a_story_is_kept_not_lost() -> None:
    wire = parse_plain_text("Headline\nPARIS, 12 mars 2026 (AFP) -", "fr")
    assert wire.body == "PARIS, 12 mars 2026 (AFP) -"
    assert wire.published == datetime(2026, 3, 12, tzinfo=timezone.utc)


def test_sentence_with_parentheses_and_dash_is_not_a_dateline() -> None:
    lead = "The minister said the plan (a first draft) - still secret - would be ready soon."
    wire = parse_plain_text(f"Headline\n{lead}\nSecond paragraph.", "en")
    assert wire.body == f"{lead}\nSecond paragraph."
    assert wire.published is None


# --- numeric dates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "lang", "order", "expected"),
    [
        ("Prenzlau, 05.06.2026", "de", "DMY", date(2026, 6, 5)),
        ("05.06.2026", None, "DMY", date(2026, 6, 5)),
        ("05.06.2026", "en", "DMY", date(2026, 6, 5)),  # dotted dates are day-first everywhere
        ("05/06/2026", "fr", "DMY", date(2026, 6, 5)),
        ("05/06/2026", "id", "DMY", date(2026, 6, 5)),
        ("05/06/2026", None, "DMY", date(2026, 6, 5)),
        ("05/06/2026", "en", "MDY", date(2026, 5, 6)),
        ("03/21/2026", "en", "MDY", date(2026, 3, 21)),
        ("03/21/2026", None, "MDY", date(2026, 3, 21)),  # day-first impossible
        ("21/03/2026", "en", "DMY", date(2026, 3, 21)),  # month-first impossible
        ("10.04.2026, 07:45 Uhr", "de", "DMY", date(2026, 4, 10)),
        ("19. März 2021", "de", None, date(2021, 3, 19)),
        ("2026-06-05", "de", None, date(2026, 6, 5)),
    ],
)
def test_numeric_dates_follow_the_language_convention(
    line: str, lang: str | None, order: str | None, expected: date
) -> None:
    assert numeric_date_order(line, lang) == order
    parsed = parse_date_line(line, lang)
    assert parsed is not None and parsed.date() == expected


# --- comment and share prompts ------------------------------------------------------------

NEW_JUNK = [
    "Jetzt kommentieren",
    "Kommentare",
    "Kommentare (12)",
    "Artikel teilen",
    "Comparte esta noticia",
    "Deja un comentario",
    "Lascia un commento",
    "Condividi questo articolo",
    "Deixe um comentário",
    "Compartilhe esta notícia",
    "Reageer",
    "Plaats een reactie",
    "Lees meer: Het kabinet valt",
    "3 comments",
]


@pytest.mark.parametrize("junk", NEW_JUNK)
def test_comment_and_share_prompts_are_removed(junk: str) -> None:
    story = [
        "Der Landkreis prüft einen Antrag auf Entnahme des Wolfs.",
        "Naturschutzverbände warnen vor Schnellschüssen.",
    ]
    body, _ = clean_body("\n".join([story[0], junk, story[1], junk]))
    assert body.split("\n") == story


def test_sentences_that_use_comment_words_stay() -> None:
    lines = [
        "Der Minister wollte den Vorfall am Freitag nicht kommentieren.",
        "Il sindaco ha deciso di condividere i dati con la regione.",
        "De minister wilde niet reageren op de vragen van de pers.",
        "12 Kommentare zu dem Gesetz gingen beim Ministerium ein, sagte ein Sprecher.",
    ]
    body, _ = clean_body("\n".join(lines))
    assert body.split("\n") == lines


# --- the project's sample wires -----------------------------------------------------------

#: The date each sample wire's date line or dateline shows.
SAMPLE_DATES = {
    "wire-0001.txt": date(2026, 2, 10),
    "wire-0002.txt": date(2026, 3, 17),
    "wire-0003.txt": date(2026, 1, 14),
    "wire-0004.txt": date(2026, 8, 20),
    "wire-0005.txt": date(2026, 5, 4),
    "wire-0006.txt": date(2026, 4, 24),
    "wire-0007.txt": date(2026, 6, 5),
    "wire-0008.txt": date(2026, 4, 10),
    "wire-0009.txt.gz": date(2026, 2, 22),
}


@pytest.mark.skipif(not SAMPLE_WIRES.is_dir(), reason="sample corpus absent")
def test_sample_wires_get_the_dates_their_datelines_show() -> None:
    items = list(ingest_paths([SAMPLE_WIRES], IngestOptions(jobs=1)))
    assert all(isinstance(item, Article) for item in items), items
    by_name = {Path(item.path).name: item for item in items}
    assert set(by_name) == set(SAMPLE_DATES)
    for name, expected in SAMPLE_DATES.items():
        article = by_name[name]
        assert article.published is not None and article.published.date() == expected, name
        first_line = article.text.split("\n")[0]
        assert len(first_line) > 80, (name, first_line)  # the lead, never a lone dateline or date line
    assert by_name["wire-0001.txt"].text.startswith("STRASBOURG, 10 février 2026 (AFN) - Le Parlement européen")
    assert by_name["wire-0002.txt"].text.startswith("MADRID, 17 mar. 2026 (AFN).- La Guardia Civil")
    assert "kommentieren" not in by_name["wire-0007.txt"].text
    assert by_name["wire-0007.txt"].text.endswith("mit den meisten Wölfen.")
