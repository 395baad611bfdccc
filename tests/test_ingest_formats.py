"""Every input format and every way a file can be bad, on files built in tmp_path."""
from __future__ import annotations

import gzip
import io
import json
import logging
import os
import sys
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from storyclust.ingest import IngestOptions, IngestStats, ingest_paths
from storyclust.types import REJECT_REASONS, Article, Rejection

ONE_JOB = IngestOptions(jobs=1)

STORIES = {
    "budget": (
        "City council approves budget",
        [
            "The city council approved a new budget on Tuesday after months of debate over school funding.",
            "The plan adds money for road repairs and for two new libraries in the eastern districts.",
            "Opposition members said the spending would force higher property taxes within three years.",
        ],
    ),
    "storm": (
        "Storm cuts power to thousands",
        [
            "A winter storm cut power to more than forty thousand homes across the region overnight.",
            "Utility crews worked through the morning to clear fallen trees from the main lines.",
            "Schools in the hardest hit towns will stay closed until at least Wednesday, officials said.",
        ],
    ),
    "football": (
        "Underdogs reach the cup final",
        [
            "The second-division side beat the league leaders two goals to one to reach the cup final.",
            "Their captain scored the winner with a header four minutes before the end of the match.",
            "It is the club's first final in more than sixty years, and tickets sold out within an hour.",
        ],
    ),
}


def article_html(key: str, *, url: str | None = None, published: str | None = "2024-05-03T10:20:00+02:00") -> str:
    """A news page with navigation, an ad, related links and comments around the story."""
    title, paragraphs = STORIES[key]
    meta = f'<meta property="article:published_time" content="{published}">' if published else ""
    canonical = f'<link rel="canonical" href="{url}">' if url else ""
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title} | Daily Example</title>
<meta property="og:site_name" content="Daily Example">{meta}{canonical}</head><body>
<nav><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li><li><a href="/sport">Sport</a></li></ul></nav>
<div class="ad">Advertisement: buy one get one free at our partner shops today</div>
<article><h1>{title}</h1>{body}</article>
<aside class="related"><h3>Related</h3><ul><li><a href="/a">Markets slip</a></li><li><a href="/b">Rain ahead</a></li></ul></aside>
<section id="comments"><h3>Comments</h3><div class="comment">First! Great article, thanks.</div></section>
<footer>Copyright 2024 Daily Example. All rights reserved.</footer></body></html>"""


def ingest(paths, options: IngestOptions = ONE_JOB) -> tuple[list[Article | Rejection], IngestStats]:
    stats = IngestStats()
    items = list(ingest_paths([str(p) for p in paths], options, stats=stats))
    assert stats.records_seen == len(items) == stats.articles + sum(stats.rejects.values())
    return items, stats


def only(items: list[Article | Rejection]) -> Article | Rejection:
    assert len(items) == 1, items
    return items[0]


def rejection(path: Path, reason: str, options: IngestOptions = ONE_JOB) -> Rejection:
    items, _ = ingest([path], options)
    item = only(items)
    assert isinstance(item, Rejection), item
    assert item.reason == reason, item
    assert item.source == str(path)
    assert item.detail and "\n" not in item.detail
    return item


def test_html_page(tmp_path: Path) -> None:
    path = tmp_path / "budget.html"
    path.write_text(article_html("budget", url="https://www.daily.example/2024/05/03/budget"), encoding="utf-8")
    article = only(ingest([path])[0])
    assert isinstance(article, Article)
    assert article.title == "City council approves budget"
    assert article.text == "\n".join(STORIES["budget"][1])
    assert article.url == "https://www.daily.example/2024/05/03/budget"
    assert article.source == "Daily Example"
    assert article.published == datetime(2024, 5, 3, 8, 20, tzinfo=timezone.utc)
    assert article.retrieved == datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    assert article.lang == "en"
    assert article.path == str(path)
    assert article.author is None


def test_html_without_article_text_is_no_text(tmp_path: Path) -> None:
    path = tmp_path / "nav.html"
    path.write_text('<html><body><nav><a href="/">Home</a> <a href="/news">News</a></nav></body></html>')
    rejection(path, "no_text")


def test_unknown_extension_sniffed_as_html(tmp_path: Path) -> None:
    path = tmp_path / "page.php"
    path.write_text(article_html("storm"), encoding="utf-8")
    article = only(ingest([path])[0])
    assert isinstance(article, Article) and article.title == "Storm cuts power to thousands"


def test_plain_text_and_unknown_text_file(tmp_path: Path) -> None:
    wire = tmp_path / "wire.txt"
    title, paragraphs = STORIES["football"]
    wire.write_text(f"{title}\n19 March 2021\n\n" + "\n\n".join(paragraphs) + "\n\nShare this article\n")
    article = only(ingest([wire])[0])
    assert isinstance(article, Article)
    assert article.title == title and article.text == "\n".join(paragraphs)
    assert article.published == datetime(2021, 3, 19, tzinfo=timezone.utc)
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nSome markdown that is not a news format we read.\n")
    rejection(notes, "unsupported")


def test_json_object_and_list(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"id": "own-id", "text": "\n".join(STORIES["storm"][1]), "title": "Storm",
                               "url": "https://news.example.org/storm", "published": "2024-01-02T03:04:05"}))
    many = tmp_path / "many.json"
    many.write_text(json.dumps([{"text": "\n".join(STORIES["budget"][1]), "lang": "EN", "source": "Wire"}, 42,
                                {"title": "no text"}]))
    items, _ = ingest([many, one])
    first, second, third, fourth = items
    assert isinstance(first, Article) and first.id == first.hash[:16] and first.lang == "en"
    assert first.lang_confidence is None and first.source == "Wire" and first.path == str(many)
    assert isinstance(second, Rejection) and (second.source, second.reason) == (f"{many}#2", "parse_error")
    assert isinstance(third, Rejection) and (third.source, third.reason) == (f"{many}#3", "no_text")
    assert isinstance(fourth, Article) and fourth.id == "own-id" and fourth.title == "Storm"
    assert fourth.source == "news.example.org"
    assert fourth.published == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def test_json_lines_under_other_names(tmp_path: Path) -> None:
    lines = "".join(json.dumps({"id": f"r{k}", "text": "\n".join(STORIES[key][1])}) + "\n"
                    for k, key in enumerate(["budget", "storm"]))
    for name in ("articles.json", "articles.out"):
        path = tmp_path / name
        path.write_text(lines)
        items, _ = ingest([path])
        assert [(type(i), i.id) for i in items] == [(Article, "r0"), (Article, "r1")]


def test_malformed_json_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"text": "unterminated')
    rejection(path, "parse_error")


def test_jsonl_with_one_broken_line(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    lines = [
        json.dumps({"id": "r1", "text": "\n".join(STORIES["budget"][1])}),
        "",
        '{"id": "r2", "text": oops}',
        json.dumps({"id": "r3", "html": article_html("storm"), "url": "https://www.site.example/s"}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "r4", "text": "   "}),
    ]
    path.write_text("\n".join(lines) + "\n")
    items, stats = ingest([path])
    assert [(type(i).__name__, i.source if isinstance(i, Rejection) else i.id) for i in items] == [
        ("Article", "r1"),
        ("Rejection", f"{path}#3"),
        ("Article", "r3"),
        ("Rejection", f"{path}#5"),
        ("Rejection", f"{path}#6"),
    ]
    assert [i.reason for i in items if isinstance(i, Rejection)] == ["parse_error", "parse_error", "empty"]
    html_record = items[2]
    assert html_record.url == "https://www.site.example/s" and html_record.title == "Storm cuts power to thousands"
    assert html_record.text == "\n".join(STORIES["storm"][1])
    assert stats.files_seen == 1 and stats.records_seen == 5


def test_storyclust_article_records_are_read_back(tmp_path: Path) -> None:
    from storyclust.schema import article_to_record

    original = Article(id="abc", text="\n".join(STORIES["football"][1]), title="Cup", lang="en",
                       lang_confidence=0.99, path="/old/place.html", duplicate_of="xyz")
    path = tmp_path / "out.jsonl"
    path.write_text(json.dumps(article_to_record(original)) + "\n" + json.dumps({"schema_version": 1, "type": "story", "story_id": "s"}) + "\n")
    items, _ = ingest([path])
    assert items[0] == original
    assert isinstance(items[1], Rejection) and items[1].reason == "unsupported"


def test_stdin_jsonl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = json.dumps({"id": "s1", "text": "\n".join(STORIES["storm"][1])}) + "\nnot json\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload.encode("utf-8"))))
    items, _ = ingest(["-"])
    assert isinstance(items[0], Article) and items[0].id == "s1" and items[0].path is None
    assert isinstance(items[1], Rejection) and items[1].source == "-#2" and items[1].reason == "parse_error"


def test_gzipped_formats(tmp_path: Path) -> None:
    html = tmp_path / "a.html.gz"
    html.write_bytes(gzip.compress(article_html("budget").encode("utf-8")))
    txt = tmp_path / "b.txt.gz"
    txt.write_bytes(gzip.compress(("Storm\n\n" + "\n".join(STORIES["storm"][1])).encode("utf-8")))
    jsonl = tmp_path / "c.jsonl.gz"
    jsonl.write_bytes(gzip.compress((json.dumps({"text": "\n".join(STORIES["football"][1])}) + "\n").encode()))
    items, _ = ingest([html, txt, jsonl])
    assert [type(i) for i in items] == [Article, Article, Article]
    assert items[0].title == "City council approves budget"
    assert items[1].text == "\n".join(STORIES["storm"][1])
    assert items[2].path == str(jsonl)


def test_gzip_bomb_is_stopped_quickly_without_ballooning_memory(tmp_path: Path) -> None:
    member = gzip.compress(b"\0" * 2**20, compresslevel=9)
    bomb = tmp_path / "bomb.html.gz"
    bomb.write_bytes(member * 1024)  # 1 GiB of zeros in about 1 MB of gzip members
    tracemalloc.start()
    try:
        item = rejection(bomb, "too_large")  # an HTML document may not inflate past max_html_bytes
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20
    assert "16777216" in item.detail


def test_gzip_bomb_in_a_stream_format(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(gzip.compress(b" " * (64 * 2**20)))  # one member, 64 MiB of blanks
    items, _ = ingest([bomb], IngestOptions(jobs=1, max_decompressed_bytes=8 * 2**20))
    item = only(items)
    assert isinstance(item, Rejection) and item.reason == "decompress_error" and "8388608" in item.detail


def test_truncated_gzip(tmp_path: Path) -> None:
    data = gzip.compress(article_html("storm").encode("utf-8") * 5)
    path = tmp_path / "cut.html.gz"
    path.write_bytes(data[: len(data) // 2])
    rejection(path, "decompress_error")
    corrupt = tmp_path / "corrupt.txt.gz"
    corrupt.write_bytes(data[:10] + b"\xff" * 200)
    rejection(corrupt, "decompress_error")


def _warc(path: Path, pages: list[tuple[str, str, str]], *, gzipped: bool) -> None:
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=gzipped)
        writer.write_record(writer.create_warcinfo_record(path.name, {"software": "test"}))
        for url, date, html in pages:
            request = writer.create_warc_record(url, "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n"))
            writer.write_record(request)
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            record = writer.create_warc_record(url, "response", payload=io.BytesIO(html.encode("utf-8")),
                                               http_headers=http, warc_headers_dict={"WARC-Date": date})
            writer.write_record(record)
        image = StatusAndHeaders("200 OK", [("Content-Type", "image/png")], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record("https://img.example/x.png", "response",
                                                      payload=io.BytesIO(b"\x89PNG\r\n"), http_headers=image))


WARC_PAGES = [
    ("https://www.daily.example/budget", "2024-05-04T06:00:00Z", article_html("budget")),
    ("https://www.daily.example/storm", "2024-05-04T06:01:00Z", article_html("storm")),
    ("https://www.daily.example/cup", "2024-05-04T06:02:00Z", article_html("football")),
]


@pytest.mark.parametrize("gzipped", [False, True])
def test_warc_response_records(tmp_path: Path, gzipped: bool) -> None:
    path = tmp_path / ("crawl.warc.gz" if gzipped else "crawl.warc")
    _warc(path, WARC_PAGES, gzipped=gzipped)
    items, _ = ingest([path])
    assert all(isinstance(i, Article) for i in items) and len(items) == 3
    assert [a.url for a in items] == [url for url, _, _ in WARC_PAGES]
    assert [a.retrieved for a in items] == [datetime(2024, 5, 4, 6, m, tzinfo=timezone.utc) for m in range(3)]
    assert [a.title for a in items] == [STORIES[k][0] for k in ("budget", "storm", "football")]
    assert all(a.path == str(path) and a.source == "Daily Example" for a in items)


def test_truncated_warc_keeps_records_read_so_far(tmp_path: Path) -> None:
    full = tmp_path / "full.warc.gz"
    _warc(full, WARC_PAGES, gzipped=True)
    data = full.read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    items, _ = ingest([cut])
    articles = [i for i in items if isinstance(i, Article)]
    assert 1 <= len(articles) < 3
    assert isinstance(items[-1], Rejection) and items[-1].reason in ("parse_error", "decompress_error")
    assert items[-1].source.startswith(f"{cut}#")


def test_random_bytes_are_binary(tmp_path: Path) -> None:
    path = tmp_path / "noise.txt"
    path.write_bytes(os.urandom(4096))
    rejection(path, "binary")
    other = tmp_path / "noise.dat"
    other.write_bytes(os.urandom(4096))
    rejection(other, "binary")


def test_empty_and_whitespace_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.html"
    empty.write_bytes(b"")
    rejection(empty, "empty")
    blank = tmp_path / "blank.txt"
    blank.write_text(" \n\t\n  ")
    rejection(blank, "empty")


def test_unreadable_paths(tmp_path: Path) -> None:
    dangling = tmp_path / "gone.txt"
    dangling.symlink_to(tmp_path / "nowhere.txt")
    rejection(dangling, "unreadable")
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    rejection(fifo, "unreadable")
    rejection(tmp_path / "missing.html", "unreadable")


def test_too_large_file(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("word " * 1000)
    rejection(path, "too_large", IngestOptions(jobs=1, max_file_bytes=1000))


def test_50_mb_html_page_is_too_large(tmp_path: Path) -> None:
    """Documented result: a 50 MB page is over max_html_bytes (16 MiB) and is rejected as
    'too_large' from its size alone, in well under a second, without being read."""
    path = tmp_path / "huge.html"
    paragraph = b"<p>The minister said the talks would resume next week in Geneva, officials said.</p>\n"
    with open(path, "wb") as fh:
        fh.write(b"<html><body><article>")
        fh.write(paragraph * (50 * 2**20 // len(paragraph)))
        fh.write(b"</article></body></html>")
    assert path.stat().st_size >= 50 * 2**20
    item = rejection(path, "too_large")
    assert "16777216" in item.detail


def test_folder_walk_is_sorted_skips_hidden_and_survives_symlink_loops(tmp_path: Path) -> None:
    root = tmp_path / "wires"
    (root / "b").mkdir(parents=True)
    (root / "a").mkdir()
    (root / ".git").mkdir()
    (root / ".git" / "config.txt").write_text("\n".join(STORIES["storm"][1]))
    (root / ".hidden.html").write_text(article_html("storm"))
    (root / "b" / "2.html").write_text(article_html("budget"))
    (root / "a" / "1.html").write_text(article_html("football"))
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)
    (root / "b" / "self").symlink_to(root / "b", target_is_directory=True)
    items, stats = ingest([root])
    assert [i.path for i in items] == [str(root / "a" / "1.html"), str(root / "b" / "2.html")]
    assert stats.files_seen == 2


def test_every_input_is_counted_and_rejections_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "ok.html").write_text(article_html("budget"))
    (tmp_path / "ok-copy.html").write_text(article_html("budget"))
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "noise.bin").write_bytes(os.urandom(1000))
    (tmp_path / "recs.jsonl").write_text('{"text": "short"}\n{bad\n')
    with caplog.at_level(logging.WARNING, logger="storyclust.ingest"):
        items, stats = ingest([tmp_path])
    assert stats.files_seen == 5 and stats.records_seen == 6 and stats.articles == 1
    assert dict(stats.rejects) == {"binary": 1, "duplicate": 1, "empty": 1, "no_text": 1, "parse_error": 1}
    assert set(stats.rejects) <= set(REJECT_REASONS)
    assert stats.summary_line() == (
        "ingest: 5 files, 6 records -> 1 articles, 5 rejected "
        "(binary 1, duplicate 1, empty 1, no_text 1, parse_error 1)"
    )
    warnings = [r.getMessage() for r in caplog.records if r.name == "storyclust.ingest" and r.levelno == logging.WARNING]
    rejected = [i for i in items if isinstance(i, Rejection)]
    assert len(warnings) == len(rejected)
    for message, item in zip(warnings, rejected):
        assert message.startswith(f"{item.source}: {item.reason}")


def test_progress_bar_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a.html").write_text(article_html("storm"))
    items = list(ingest_paths([tmp_path], ONE_JOB, progress=True))
    captured = capsys.readouterr()
    assert len(items) == 1 and captured.out == ""
    assert "ingest:" in captured.err and "file" in captured.err
