"""The HTML report: the page itself, the `report` command, record_to_story, and a real headless browser."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from sample_stories import build_state, sample_stories

from storyclust.report import render_report
from storyclust.report.commands import report_command
from storyclust.report.html import OTHER_COLOUR, PALETTE, contrast_ratio, text_colour_on
from storyclust.schema import dumps, record_to_story, story_to_record
from storyclust.store import SQLiteStore
from storyclust.types import Article, Story, StoryMember

GENERATED = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
N_STORIES, N_ARTICLES = 15, 33  # data/samples: 10 gold stories + 5 singletons


class Page(HTMLParser):
    """Counts what matters in a report page: table rows, timeline rows, article items, external loads."""

    def __init__(self) -> None:
        super().__init__()
        self.rows, self.timeline_rows, self.articles, self.scripts, self.external = 0, 0, 0, 0, []
        self.row_ids: list[str] = []
        self._tbody = False
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tbody":
            self._tbody = True
        elif tag == "tr" and self._tbody:
            self.rows += 1
            self.row_ids.append(a.get("id"))
        elif tag == "a" and "row" in (a.get("class") or "").split():
            self.timeline_rows += 1
        elif tag == "li" and self._tbody:
            self.articles += 1
        elif tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            value = a.get(name) or ""
            if tag in ("script", "link", "img", "iframe") and value:
                self.external.append(value)

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._tbody = False

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Page:
    p = Page()
    p.feed(page)
    return p


def labelled_samples() -> list[Story]:
    from storyclust.labels import story_labels

    stories = sample_stories()
    labels = story_labels(stories)
    return [dataclasses.replace(s, labels=labels[s.story_id]) for s in stories]


def test_page_lists_every_story_and_article_and_loads_nothing():
    page = render_report(labelled_samples(), title="Samples", generated_at=GENERATED)
    p = parse(page)
    assert p.rows == N_STORIES and p.timeline_rows == N_STORIES and p.articles == N_ARTICLES
    assert p.external == [] and p.scripts == 1  # one inline script, nothing fetched
    assert "http://" not in page.split("<body>")[0] and "https://" not in page.split("<body>")[0]
    assert "<title>Samples</title>" in page and "2026-12-01 12:00" in page
    assert "Kartika Wulandari" in page  # titles are there
    assert "417" in page  # labels are shown
    assert 'href="https://www.exemple-quotidien.fr/culture/cinema/' in page  # article links


def test_text_is_escaped_and_only_safe_links_are_links():
    evil = Article(id="e1", text="x", title="<script>alert(1)</script>", url="javascript:alert(1)", lang="en",
                   source="<b>src</b>", published=GENERATED)
    ok = Article(id="e2", text="y", title="Fine & dandy", url="https://example.org/a?b=1&c=2", lang="en",
                 duplicate_of="e1", published=GENERATED)
    page = render_report([Story("s_x", (StoryMember(evil, 0.9), StoryMember(ok, 0.8)))], generated_at=GENERATED)
    body = page.split("<body>")[1].split("<script>")[0]
    assert "<script>alert" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "javascript:" not in body and "&lt;b&gt;src&lt;/b&gt;" in body
    assert 'href="https://example.org/a?b=1&amp;c=2"' in body
    assert 'id="a-e1"' in body and 'href="#a-e1"' in body  # the duplicate mark links to its original


def test_palette_is_accessible():
    for colour in (*PALETTE, OTHER_COLOUR):
        assert contrast_ratio(colour, text_colour_on(colour)) >= 4.5  # badge text (WCAG AA)
        assert contrast_ratio(colour, "#1a1a1a") >= 3.0 or contrast_ratio(colour, "#ffffff") >= 3.0
    assert len(set(PALETTE)) == 7


def test_empty_and_undated_inputs():
    page = render_report([], generated_at=GENERATED)
    assert "No stories." in page and parse(page).rows == 0
    undated = Story("s_u", (StoryMember(Article(id="u", text="t", title="Undated"), 1.0),))
    page = render_report([undated], generated_at=GENERATED)
    p = parse(page)
    assert p.rows == 1 and p.timeline_rows == 0 and "nothing to draw" in page


def test_timeline_limit_keeps_the_largest_and_says_so():
    stories = labelled_samples()
    page = render_report(stories, generated_at=GENERATED, timeline_limit=4)
    p = parse(page)
    assert p.timeline_rows == 4 and p.rows == N_STORIES
    assert "the 4 largest of 15 dated stories" in page


def test_record_to_story_inverts_story_to_record():
    for story in labelled_samples():
        story = dataclasses.replace(story, status="updated", added=(story.members[0].article.id,))
        record = story_to_record(story)
        back = record_to_story(record)
        assert story_to_record(back) == record
        assert back.story_id == story.story_id and back.status == "updated" and back.added == story.added
        assert [m.article.id for m in back.members] == [m.article.id for m in story.members]
        assert [m.article.published for m in back.members] == [m.article.published for m in story.members]
        assert back.headline == story.headline
    record = {**story_to_record(labelled_samples()[0]), "labels": ["a", "b"]}
    record["articles"][0]["joined_by"] = "merge"
    back = record_to_story(record)
    assert back.labels == ("a", "b") and back.members[0].joined_by == "merge"
    with pytest.raises(ValueError):
        record_to_story({"type": "article", "id": "x"})
    with pytest.raises(ValueError):
        record_to_story({"type": "story", "story_id": "s", "articles": "nope"})


# -- the command -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stories_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "stories.jsonl"
    path.write_text("".join(dumps(story_to_record(s)) + "\n" for s in sample_stories()), encoding="utf-8")
    return path


def run(*args: str, env: dict | None = None, input: str | None = None):
    return CliRunner().invoke(report_command, list(args), env=env or {}, input=input, catch_exceptions=False)


def test_report_command_writes_the_file(stories_file, tmp_path):
    out = tmp_path / "report.html"
    proc = run(str(stories_file), "-o", str(out), "--title", "Night")
    assert proc.exit_code == 0, proc.output
    page = out.read_text(encoding="utf-8")
    p = parse(page)
    assert p.rows == N_STORIES and "<title>Night</title>" in page
    assert "\r" not in proc.output  # no progress line off a terminal
    assert not list(tmp_path.glob(".report.html.*"))  # the temporary file was renamed into place
    assert "6.7" in page  # labels computed for records that carry none


def test_report_command_filters(stories_file, tmp_path):
    out = tmp_path / "r.html"
    assert run(str(stories_file), "-o", str(out), "--min-size", "2").exit_code == 0
    assert parse(out.read_text(encoding="utf-8")).rows == 10
    assert run(str(stories_file), "-o", str(out), env={"STORYCLUST_MIN_SIZE": "3"}).exit_code == 0
    sizes = {s.story_id: s.size for s in sample_stories()}
    assert parse(out.read_text(encoding="utf-8")).rows == sum(1 for n in sizes.values() if n >= 3)
    # stories last active since 31 days before 2026-07-31 (later ones too: "since" has no end)
    assert run(str(stories_file), "-o", str(out), "--since", "31d", "--now", "2026-07-31T00:00Z").exit_code == 0
    ids = parse(out.read_text(encoding="utf-8")).row_ids
    expected = [s.story_id for s in sample_stories()
                if s.last_published and s.last_published >= datetime(2026, 6, 30, tzinfo=timezone.utc)]
    assert sorted(ids) == sorted(expected) and 2 <= len(ids) < N_STORIES
    assert "s_quake-antofagasta-2026-07" in ids and "s_quake-poso-2026-01" not in ids


def test_report_command_reads_stdin_and_fails_cleanly(stories_file, tmp_path):
    proc = run("-", input=stories_file.read_text(encoding="utf-8"))
    assert proc.exit_code == 0 and parse(proc.output).rows == N_STORIES
    articles = tmp_path / "articles.jsonl"
    articles.write_text('{"type": "article", "id": "a", "text": "t"}\n', encoding="utf-8")
    assert run(str(articles), "-o", str(tmp_path / "x.html")).exit_code == 1
    assert not (tmp_path / "x.html").exists()
    assert run(str(stories_file), "--since", "soon").exit_code == 2
    assert run(str(stories_file), "--state", str(stories_file)).exit_code == 2
    assert run(str(stories_file), "--open-only").exit_code == 2


def test_report_from_a_state_file(tmp_path):
    db = tmp_path / "news.db"
    build_state(db)
    out = tmp_path / "state.html"
    proc = run("--state", str(db), "-o", str(out))
    assert proc.exit_code == 0, proc.output
    p = parse(out.read_text(encoding="utf-8"))
    with SQLiteStore(db) as store:
        n_stories = len(set(store.memberships().values()))
    assert p.rows == n_stories and p.articles == N_ARTICLES


def test_report_command_plugs_into_a_group():
    group = click.Group("storyclust")
    group.add_command(report_command, "report")
    proc = CliRunner().invoke(group, ["report", "--help"])
    assert proc.exit_code == 0 and "STORYCLUST_REPORT_OUTPUT" in proc.output


# -- a real browser ------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="storyclust-chromium-")
    try:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             *args], capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_browser_renders_timeline_and_table(tmp_path):
    stories = labelled_samples()
    path = tmp_path / "report.html"
    path.write_text(render_report(stories, title="storyclust: data/samples", generated_at=GENERATED),
                    encoding="utf-8")
    target = "s_quake-poso-2026-01"
    proc = chromium("--virtual-time-budget=3000", "--dump-dom", f"{path.as_uri()}#{target}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    assert 'data-ready="1"' in dom  # the script ran to its end
    p = parse(dom)
    assert p.rows == N_STORIES and p.timeline_rows == N_STORIES and p.articles == N_ARTICLES
    assert dom.count("<circle") >= N_STORIES
    row = dom.split(f'<tr id="{target}"')[1].split("</tr>")[0]
    assert "<details open" in row  # following a timeline link opens the story's articles
    assert "All 15 stories" in dom  # the filter bar is shown and counted
    artifacts = Path(os.environ.get("STORYCLUST_ARTIFACTS") or tmp_path)  # e.g. tests/artifacts in CI
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "report.png"
    proc = chromium("--window-size=1280,900", "--hide-scrollbars", f"--screenshot={shot}", path.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
