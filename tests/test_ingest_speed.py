"""What makes ingest fast must not change what it reads: one parse per page, the dropped
elements, the fast-extract switch, batched worker messages."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import etree
from trafilatura.utils import load_html

from storyclust import cli as cli_mod
from storyclust.ingest import IngestOptions, ingest_paths
from storyclust.ingest import extract as extract_mod
from storyclust.ingest.decode import normalize_markup
from storyclust.types import Article

STORY = " ".join(
    f"Paragraph {k}: the harbour authority said on Monday that repairs to pier {k} would take until spring."
    for k in range(6)
)
PAGE = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Harbour repairs | Coast News</title>
<meta property="og:site_name" content="Coast News"><meta property="article:published_time" content="2026-03-02T08:15:00Z">
<script type="application/ld+json">{{"@context": "https://schema.org", "@type": "NewsArticle", "headline": "Harbour repairs",
"author": {{"@type": "Person", "name": "Jane Doe"}}}}</script>
<script>var ads = {{slot: 1}};</script><style>.x{{color:red}}</style></head>
<body><nav><a href="/">Home</a><a href="/world">World news menu</a></nav>
<div id="cookie"><button>Accept all cookies</button></div>
<article><h1>Harbour repairs</h1><p>{STORY}</p><p>The work is paid for by the port's own budget.</p>
<svg><path d="M0 0"/></svg><p>Residents were told to use the ferry meanwhile.</p></article>
<aside><h3>Most read</h3><ul><li><a href="/x">Another headline entirely</a></li></ul></aside>
<footer>Copyright Coast News</footer></body></html>"""


def test_drop_code_keeps_json_ld_and_tails() -> None:
    tree = load_html("<html><head><script type='application/ld+json'>{}</script><script>x()</script></head>"
                     "<body><p>a<nav>menu</nav>tail one</p><p>b<svg></svg>tail two</p></body></html>")
    extract_mod._drop_code(tree)
    html = etree.tostring(tree, encoding="unicode")
    assert "ld+json" in html and "x()" not in html and "menu" not in html and "<svg" not in html
    assert "atail one" in html and "btail two" in html


@pytest.mark.parametrize("html", [
    PAGE,
    "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0//EN\" \"x\"/>\n<html><body><p>text</p></body></html>",
    "<html/>\n<body><p>self-closing html tag</p></body>",
    "<p>just a fragment</p>",
    "no markup at all, " * 20,
    "<?xml version='1.0' encoding='utf-8'?><html><body><p>declared</p></body></html>",
])
def test_parse_gives_trafilaturas_tree(html: str) -> None:
    html = normalize_markup(html)
    ours, theirs = extract_mod._parse(html), load_html(html)
    assert (ours is None) == (theirs is None)
    if ours is not None:
        assert etree.tostring(ours) == etree.tostring(theirs)


def test_page_metadata_and_text() -> None:
    page = extract_mod.extract_html(normalize_markup(PAGE))
    assert page is not None
    assert page.title == "Harbour repairs" and page.author == "Jane Doe" and page.source == "Coast News"
    assert page.published is not None and page.published.hour == 8
    assert "Paragraph 5" in page.text and "Residents were told" in page.text
    for junk in ("World news menu", "Another headline", "Accept all", "Copyright"):
        assert junk not in page.text


def test_fast_extract_reaches_trafilatura(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = extract_mod.trafilatura.bare_extraction
    monkeypatch.setattr(extract_mod.trafilatura, "bare_extraction", lambda *a, **k: seen.append(k["fast"]) or real(*a, **k))
    assert extract_mod.extract_html(normalize_markup(PAGE), fast=True) is not None
    assert extract_mod.extract_html(normalize_markup(PAGE)) is not None
    assert seen == [True, False]


def test_fast_extract_option_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--fast-extract and STORYCLUST_FAST_EXTRACT reach IngestOptions; off by default."""
    (tmp_path / "p.html").write_text(PAGE, encoding="utf-8")
    for name in [n for n in __import__("os").environ if n.startswith("STORYCLUST_")]:
        monkeypatch.delenv(name)
    seen: list[bool] = []
    real = extract_mod.extract_html

    def spy(html, url=None, *, fast=False):
        seen.append(fast)
        return real(html, url, fast=fast)

    monkeypatch.setattr("storyclust.ingest.readers.extract_html", spy)
    for args, env in ((["--fast-extract"], {}), ([], {"STORYCLUST_FAST_EXTRACT": "1"}), ([], {})):
        result = CliRunner().invoke(cli_mod.cli, ["ingest", "-j", "1", *args, str(tmp_path)], env=env,
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        records = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        assert len(records) == 1 and "Residents were told" in records[0]["text"]
    assert seen == [True, True, False]


def test_batched_workers_keep_order_and_every_record(tmp_path: Path) -> None:
    """A JSONL file larger than one batch, between pages: same items, same order with 1 and 2 jobs."""
    from storyclust.ingest import parallel

    lines = [json.dumps({"id": f"r{k}", "text": f"Record {k}. " + STORY}) for k in range(parallel.BATCH_RECORDS * 2 + 5)]
    (tmp_path / "b.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for k in range(5):
        (tmp_path / f"a{k}.html").write_text(PAGE.replace("Harbour repairs", f"Harbour repairs {k}"), encoding="utf-8")
        (tmp_path / f"c{k}.html").write_text(PAGE.replace("pier", f"quay {k}"), encoding="utf-8")
    one = [(type(i).__name__, i.id if isinstance(i, Article) else i.source) for i in ingest_paths([tmp_path], IngestOptions(jobs=1))]
    two = [(type(i).__name__, i.id if isinstance(i, Article) else i.source) for i in ingest_paths([tmp_path], IngestOptions(jobs=2))]
    assert one == two and len(one) == len(lines) + 10
