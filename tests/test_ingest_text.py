"""Plain-text wires: the two real seeds, and the cleaning rules on texts written here."""
from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from storyclust.ingest import IngestOptions, ingest_paths
from storyclust.ingest.clean import clean_body, clean_title, parse_date_line, parse_plain_text
from storyclust.types import Article

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
FRENCH_SEED = SEEDS / "000_3c4018b47ec1ff69.txt"
INDONESIAN_SEED = SEEDS / "003_2a9609d5f5cb1039.txt"

needs_seeds = pytest.mark.skipif(not FRENCH_SEED.exists() or not INDONESIAN_SEED.exists(), reason="shared seeds absent")


def _one_article(path: Path) -> Article:
    items = list(ingest_paths([path], IngestOptions(jobs=1)))
    assert len(items) == 1
    assert isinstance(items[0], Article), items[0]
    return items[0]


def _paragraphs(text: str) -> list[str]:
    return [line for line in text.split("\n") if line.strip()]


@needs_seeds
def test_french_seed_is_clean() -> None:
    article = _one_article(FRENCH_SEED)
    assert article.lang == "fr" and article.lang_confidence > 0.9
    assert article.title == (
        "Les régulateurs chinois ont eu des entretiens avec Alibaba, Tencent et 9 autres sur la technologie « deepfake »"
    )
    assert article.text.startswith("BEIJING, 18 mars (Reuters) – Les régulateurs chinois")
    assert "Laisser un commentaire" not in article.text
    assert "Reportage de" not in article.text and "Édité par" not in article.text
    assert "Ajoute des détails" not in article.text
    assert article.text.endswith("destiné aux professionnels.")
    # "18 mars" has no year and the text gives none: no date is invented.
    assert article.published is None
    assert article.retrieved is not None and article.retrieved.tzinfo is not None
    assert article.path == str(FRENCH_SEED)
    assert article.id == article.hash[:16]


@needs_seeds
def test_indonesian_seed_is_clean() -> None:
    article = _one_article(INDONESIAN_SEED)
    assert article.lang == "id"
    assert article.title == "China Panggil Alibaba CS Bahas Teknologi Deep Fake"
    assert article.published is not None and article.published.utcoffset() is not None
    assert article.published.date() == date(2021, 3, 19)
    assert article.published == datetime(2021, 3, 19, 8, 5, tzinfo=timezone.utc)  # 15:05 WIB = UTC+7
    paragraphs = _paragraphs(article.text)
    assert len(paragraphs) == len(set(paragraphs)) == 10
    assert "tulis komentar anda" not in article.text.lower()
    assert "(wbs)" not in article.text
    assert "Jum'at, 19 Maret 2021" not in article.text
    assert article.text.startswith("BEIJING - Regulator China")


def test_clean_body_drops_junk_in_several_languages() -> None:
    story = [
        "The central bank raised its main interest rate by half a point on Thursday.",
        "Economists had expected a smaller move after inflation eased in May.",
    ]
    junk = [
        "Share this article",
        "Read more: Five things to know about inflation",
        "Leave a comment",
        "Partager sur Facebook",
        "Lire aussi : Les marchés en baisse",
        "Baca juga: Harga minyak naik lagi",
        "Bagikan",
        "Lee también: La inflación en España",
        "Deja un comentario",
        "Lesen Sie auch: Die Zinsen steigen",
        "Newsletter abonnieren",
        "(Reporting by Jane Doe; Editing by John Roe)",
        "Reporting by Jane Doe; Editing by John Roe",
        "(Ajoute des détails, l’arrière-plan)",
    ]
    text = "\n".join([story[0], *junk[:7], story[1], *junk[7:]])
    body, author = clean_body(text)
    assert body == "\n".join(story)
    assert author is None


def test_clean_body_bylines_credits_and_trailing_signoff() -> None:
    text = "\n".join(
        [
            "By Maria Garcia and Tom Black",
            "Flooding forced thousands of people from their homes in the north of the country on Monday.",
            "Rescue teams used boats to reach villages cut off by the water.",
            "Rescue teams used boats to reach villages cut off by the water.",
            "The weather service expects more rain this week. (Reporting by Maria Garcia; Editing by Tom Black)",
            "Penulis: Budi Santoso",
            "Editor: Siti Rahma",
        ]
    )
    body, author = clean_body(text)
    assert author == "Maria Garcia and Tom Black"
    assert body.split("\n") == [
        "Flooding forced thousands of people from their homes in the north of the country on Monday.",
        "Rescue teams used boats to reach villages cut off by the water.",
        "The weather service expects more rain this week.",
    ]
    assert clean_body(body) == (body, None)  # idempotent


def test_clean_body_keeps_sentences_that_merely_mention_junk_words() -> None:
    lines = [
        "Shareholders will vote on the merger next month, the company said in a statement.",
        "Von Montag an gilt in der ganzen Stadt eine neue Regel für den Verkehr.",
        "Di Jakarta, polisi menangkap tiga orang yang diduga terlibat.",
        "Comments from the minister were not immediately available.",
        "Avec de nouvelles mesures, le gouvernement espère relancer la croissance dès cet été.",
        "Reporting by phone from the border, our correspondent described long queues of trucks.",
    ]
    body, author = clean_body("\n".join(lines))
    assert body.split("\n") == lines
    assert author is None


def test_titles_lose_agency_status_prefixes() -> None:
    assert clean_title("UPDATE 2-Oil prices rise on supply fears") == "Oil prices rise on supply fears"
    assert clean_title("MISE À JOUR 2 – Les régulateurs chinois") == "Les régulateurs chinois"
    assert clean_title("EXCLUSIVE-Bank weighs sale") == "Bank weighs sale"
    assert clean_title("Update on the talks: what we know") == "Update on the talks: what we know"


@pytest.mark.parametrize(
    ("line", "lang", "expected"),
    [
        ("Jum'at, 19 Maret 2021 - 15:05 WIB", "id", datetime(2021, 3, 19, 8, 5, tzinfo=timezone.utc)),
        ("Publié le 19 mars 2021 à 15h05", "fr", datetime(2021, 3, 19, 15, 5, tzinfo=timezone.utc)),
        ("Published March 19, 2021 10:05 GMT", "en", datetime(2021, 3, 19, 10, 5, tzinfo=timezone.utc)),
        ("19. März 2021", "de", datetime(2021, 3, 19, tzinfo=timezone.utc)),
        ("19 de marzo de 2021", "es", datetime(2021, 3, 19, tzinfo=timezone.utc)),
        ("18 mars", "fr", None),  # no year: never invented
        ("BEIJING, 18 mars (Reuters) – Les régulateurs chinois ont récemment convoqué 11 entreprises", "fr", None),
        ("China Panggil Alibaba CS Bahas Teknologi Deep Fake", "id", None),
        ("The 2021 budget was approved by parliament", "en", None),
    ],
)
def test_parse_date_line(line: str, lang: str, expected: datetime | None) -> None:
    parsed = parse_date_line(line, lang)
    assert parsed == expected
    if parsed is not None:
        assert parsed.tzinfo is not None


def test_parse_plain_text_without_date_line() -> None:
    wire = parse_plain_text("Headline here\n\nFirst paragraph of the story.\nSecond paragraph.", "en")
    assert wire.title == "Headline here"
    assert wire.published is None
    assert wire.body == "First paragraph of the story.\nSecond paragraph."
