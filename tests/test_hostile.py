"""Hostile inputs (issue 12): every record is its own unit of failure, in bounded time and memory.

Each test feeds one class of hostile input next to good records and asserts: no traceback,
no hang (a tight time bound), the allowed rejection or exit code, every other record still
delivered, and bounded memory where that is the point. Bounds are wall-clock limits at least
10x above what the linear code needs on a slow shared 2-core machine, and far below what the
old super-linear code took (quoted in each test).
"""
from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path
from typing import Union

import pytest

from storyclust.ingest import IngestOptions, IngestStats, ingest_paths
from storyclust.ingest.clean import _BYLINE, clean_body, parse_plain_text
from storyclust.ingest.decode import declared_html_charset, looks_html
from storyclust.ingest.extract import _meta_published
from storyclust.ingest.parallel import STALL_ENV
from storyclust.schema import dumps, iter_jsonl, parse_datetime, record_to_article
from storyclust.types import REJECT_REASONS, TRANSIENT_REASONS, Article, Rejection, valid_text

GOOD = (
    "Dock workers extended their strike into a second week on Monday, leaving container ships "
    "waiting outside the harbour while talks with the port authority stalled again."
)
PAGE = (
    "<html><head><title>Harbour strike enters second week</title></head><body><article>"
    "<h1>Harbour strike enters second week</h1>"
    + "".join(f"<p>{GOOD} Paragraph {k} adds detail number {k + 7}.</p>" for k in range(4))
    + "</article></body></html>"
)

Item = Union[Article, Rejection]


def _good(n: int) -> dict:
    return {"id": f"good{n}", "text": f"{GOOD} Record number {n} of the file adds its own closing line."}


def _ingest(paths: list, **options) -> tuple[list[Item], IngestStats]:
    stats = IngestStats()
    options.setdefault("jobs", 1)
    items = list(ingest_paths([str(p) for p in paths], IngestOptions(**options), stats=stats))
    return items, stats


def _timed(fn, *args, **kwargs):
    started = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - started


def _cli(args: list[str], stdin: bytes = b"", env: dict | None = None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "storyclust", *args], input=stdin, capture_output=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )


# --- 1. one bad value ends nothing but its own record ------------------------------------

BAD_LINES = {
    # value -> what the record becomes: an article with the value dropped, or a rejection
    "published_1e300": ('{"id": "bad", "text": "%s", "published": 1e300}', "article"),
    "published_nan": ('{"id": "bad", "text": "%s", "published": NaN}', "article"),
    "published_minus_1e18": ('{"id": "bad", "text": "%s", "published": -1e18}', "article"),
    "published_year_9999_west": ('{"id": "bad", "text": "%s", "published": "9999-12-31T23:00:00-05:00"}', "article"),
    "retrieved_infinity": ('{"id": "bad", "text": "%s", "retrieved": Infinity}', "article"),
    "confidence_out_of_range": ('{"id": "bad", "text": "%s", "lang": "en", "lang_confidence": 1e300}', "article"),
    "int_of_5000_digits": ('{"id": "bad", "text": "%s", "n": ' + "7" * 5000 + "}", "parse_error"),
    "array_100k_deep": ('{"id": "bad", "text": "%s", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "parse_error"),
    "not_utf8": (b'{"id": "bad", "text": "\xff\xfe %s"}', "decode_error"),
    "surrogate_title": ('{"id": "bad", "text": "%s", "title": "\\udcff \\ud800"}', "article"),
    "nul_in_text": ('{"id": "bad", "text": "\\u0000%s\\u0000"}', "article"),
}


def _jsonl_with(bad: Union[str, bytes]) -> bytes:
    if isinstance(bad, str):
        bad = bad.encode()
    bad = bad.replace(b"%s", GOOD.encode())
    lines = [json.dumps(_good(k)).encode() for k in range(2)] + [bad] + [json.dumps(_good(k)).encode() for k in (2, 3)]
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_a_bad_value_costs_only_its_own_line(tmp_path: Path, case: str) -> None:
    """Before: the reader raised outside its per-record guard (5 records in, 2 articles out)."""
    bad, expected = BAD_LINES[case]
    path = tmp_path / "feed.jsonl"
    path.write_bytes(_jsonl_with(bad))
    (items, stats), elapsed = _timed(_ingest, [path], dedupe=False)
    assert elapsed < 5
    assert len(items) == 5 and stats.records_seen == 5
    assert [i.id for i in items if isinstance(i, Article) and i.id.startswith("good")] == [f"good{k}" for k in range(4)]
    third = items[2]
    assert third.source == f"{path}#3" if isinstance(third, Rejection) else third.path == str(path)
    if expected == "article":
        assert isinstance(third, Article) and third.id == "bad"
        assert third.published is None and third.retrieved is not None  # dropped, the file's mtime instead
        assert third.lang_confidence is None or 0.0 <= third.lang_confidence <= 1.0
        dumps({"title": third.title, "text": third.text}).encode("utf-8")  # valid UTF-8 by construction
        assert "\x00" not in third.text
    else:
        assert isinstance(third, Rejection) and third.reason == expected


@pytest.mark.parametrize("case", ["published_1e300", "int_of_5000_digits", "array_100k_deep", "surrogate_title"])
def test_bad_values_on_stdin_do_not_crash_the_cli(case: str) -> None:
    """Before: the same lines on stdin ended `storyclust ingest -` with a traceback."""
    done, elapsed = _timed(_cli, ["ingest", "-j", "1", "--no-dedupe", "-"], stdin=_jsonl_with(BAD_LINES[case][0]))
    assert elapsed < 30
    assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    records = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert [r["id"] for r in records if r["id"].startswith("good")] == [f"good{k}" for k in range(4)]
    assert done.returncode == (0 if BAD_LINES[case][1] == "article" else 3)


def test_bad_values_in_a_json_array_cost_only_their_item(tmp_path: Path) -> None:
    items_in = [_good(0), {"id": "bad", "text": GOOD, "published": 1e300, "lang_confidence": float("nan")},
                "not an object", {"id": "b2", "html": "<p>\udcff</p>"}, _good(1)]
    path = tmp_path / "list.json"
    path.write_text(json.dumps(items_in))  # NaN and a lone surrogate escape, as json.dumps writes them
    items, _ = _ingest([path], dedupe=False)
    assert [getattr(i, "id", None) or i.reason for i in items] == ["good0", "bad", "parse_error", "no_text", "good1"]
    assert items[1].published is None and 0.0 <= items[1].lang_confidence <= 1.0


def test_parse_datetime_never_raises() -> None:
    for value in (1e300, float("nan"), float("inf"), -1e18, 10**30, True, "9999-12-31T23:00:00-05:00",
                  "0001-01-01T00:00:00+05:00", "x" * 10_000, {"a": 1}, [1], b"2024"):
        assert parse_datetime(value) is None
    assert parse_datetime("2026-03-01T10:00:00z").isoformat() == "2026-03-01T10:00:00+00:00"
    assert parse_datetime(0).year == 1970


def test_record_to_article_clamps_confidence() -> None:
    article = record_to_article({"id": 12, "text": GOOD, "lang_confidence": 7, "title": 10**3})
    assert article.lang_confidence == 1.0 and article.id == "12" and article.title == "1000"


# --- 2. text is valid Unicode by construction -----------------------------------------

def test_valid_text_rule() -> None:
    assert valid_text("caf\udce9.html") == "caf\\xe9.html"  # an undecodable byte: shown as ls -b does
    assert valid_text("a\ud800b\udfffc") == "a\ufffdb\ufffdc"  # other lone surrogates
    assert valid_text("\ud83d\ude00") == "\U0001F600"  # a pair split in two: the character
    plain = "déjà vu " * 1000
    assert valid_text(plain) is plain  # the fast path hands the same object back
    assert Rejection("x\udcff", "empty", "y\ud800").source == "x\\xff"
    assert Article(id="\udcff", text="t\ud800").hash  # hashing works on the repaired text
    dumps({"a": "\udcff", "b": ["\ud800"]}).encode("utf-8")


def test_undecodable_file_names_and_surrogates_reach_the_output(tmp_path: Path) -> None:
    """Before: UnicodeEncodeError at output ended the whole run."""
    folder = tmp_path / "in"
    folder.mkdir()
    raw = os.fsencode(folder)
    with open(raw + b"/caf\xe9.jsonl", "wb") as fh:
        fh.write(json.dumps({"id": "s1", "title": "\udcff", "text": GOOD}).encode() + b"\n")
    with open(raw + b"/empty\xff.txt", "wb"):
        pass
    rejects = tmp_path / "rejects.jsonl"
    done = _cli(["ingest", "-j", "1", str(folder), "--rejects", str(rejects)])
    assert b"Traceback" not in done.stderr, done.stderr.decode(errors="replace")
    assert done.returncode == 3
    (article,) = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert article["title"] == "\\xff" and article["path"].endswith("caf\\xe9.jsonl")
    (rejection,) = [json.loads(line) for line in rejects.read_text(encoding="utf-8").splitlines()]
    assert rejection["source"].endswith("empty\\xff.txt") and rejection["reason"] == "empty"


# --- 3. regexes: linear worst cases -----------------------------------------------------

def _fast(fn, *args, bound: float = 0.5):
    result, elapsed = _timed(fn, *args)
    assert elapsed < bound, f"{fn.__name__} took {elapsed:.2f} s"
    return result


def test_html_sniffing_is_linear() -> None:
    """Before: 3.4 s at 24 repetitions of ``<!---->``, 10.8 s at 26 (x4 per 2 more)."""
    assert not _fast(looks_html, b"<!---->" * 300_000 + b"<x")  # 2 MB (only 8 KiB are sniffed)
    assert _fast(looks_html, b"<!---->" * 1000 + b"<html>")
    assert _fast(looks_html, b'\xef\xbb\xbf <?xml version="1.0"?>\n<!-- a -- b -->\n<!DOCTYPE html><p>')
    assert not _fast(looks_html, b"<!-- never closed " + b"-" * 2_000_000)


def test_byline_is_linear() -> None:
    """Before: 0.37 s at "By " + "Ay" * 20, x4 per extra "Ay" pair (a 120-character line: ages)."""
    for unit in ("Ay", "A, ", "A and ", "A B C D E, ", "A-", "A de "):  # 120-character worst cases: ~0.05 ms
        line = ("By " + unit * 120)[:119] + "!"
        assert _fast(_BYLINE.match, line, bound=0.05) is None
    # Lines over 120 characters never reach it; even so, 1 MB costs ~0.3 s (linear, a large constant).
    assert _fast(_BYLINE.match, "By " + "Ay" * 500_000 + "!", bound=2.0) is None
    assert _fast(_BYLINE.match, "By " + "A, " * 330_000 + "!", bound=2.0) is None
    line = "By " + "Ay " * 39 + "!"
    assert _fast(clean_body, line + "\n" + GOOD) == (line + "\n" + GOOD, None)  # not a byline: kept
    assert clean_body("By Jane Doe and John Smith\n" + GOOD) == (GOOD, "Jane Doe and John Smith")


def test_signoff_is_linear() -> None:
    """Before: 0.96 s on 20,000 spaces (quadratic: 1 MB of em spaces ~ 40 min)."""
    spaces = "\u2003" * 1_000_000  # not collapsed by normalize_text
    assert _fast(clean_body, GOOD + spaces + "x")[0].endswith("x")
    assert _fast(clean_body, GOOD + " (reporting" * 150_000)[0].startswith(GOOD)
    assert clean_body(GOOD + " (Reporting by Jane Doe; Editing by Tom)") == (GOOD, None)


def test_dateline_is_linear() -> None:
    """Before: 2.6 s on a dateline followed by 20,000 spaces (quadratic)."""
    from storyclust.ingest.clean import warm_up

    warm_up()  # dateparser's one-time import is not what is measured
    text = "Title\nPARIS, 12 mars 2026 (AFP)" + "\u2003" * 1_000_000 + "x\n" + GOOD
    assert _fast(parse_plain_text, text, "fr").title == "Title"


def test_meta_date_scan_is_linear() -> None:
    """Before: 2.7 s on 4,000 unclosed ``<meta `` (quadratic to cubic; one odd page -> a 30 s timeout)."""
    assert _fast(_meta_published, "<meta " * 300_000) is None
    assert _fast(_meta_published, "<meta " + "name=pubdate " * 150_000) is None
    assert _fast(_meta_published, '<meta name="pubdate" ' + "content='x' " * 150_000 + ">") is None
    assert _fast(declared_html_charset, b"<meta " * 400_000) is None
    page = '<meta content="2026-03-01T10:00:00+01:00" property="article:published_time">'
    assert _meta_published(page).isoformat() == "2026-03-01T10:00:00+01:00"
    assert declared_html_charset(b'<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">') == "koi8-r"


def test_a_hostile_page_as_a_whole_is_fast(tmp_path: Path) -> None:
    """The patterns above in one page without extension: sniffed, decoded, extracted, dated."""
    page = tmp_path / "page"
    page.write_bytes(b"<!---->" * 30 + PAGE.replace("<head>", "<head>" + "<meta " * 5000 + ">").encode())
    (items, _), elapsed = _timed(_ingest, [page])
    assert elapsed < 10 and isinstance(items[0], Article)


# --- 4. time limits cover every step that touches the bytes -----------------------------

@pytest.mark.parametrize("jobs", [1, 2])
def test_parsing_a_whole_json_file_is_under_the_time_limit(tmp_path: Path, jobs: int) -> None:
    """Decoding and parsing a .json file run under the limit: one timeout for the file, not
    one for each of its records after an unguarded parse."""
    path = tmp_path / "many.json"
    path.write_text(json.dumps([_good(k) for k in range(20_000)]))
    items, _ = _ingest([path], jobs=jobs, timeout=1e-6)
    assert [(i.source, i.reason) for i in items] == [(str(path), "timeout")]


# --- 5. memory is bounded by the settings -----------------------------------------------

RSS_PROBE = """\
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
"""
#: Peak RSS of `storyclust ingest` on a 20 MiB text of distinct words (measured: ~470 MiB;
#: 5,200 MiB before the MinHash cap).
MAX_RSS_MIB = 1024


def test_minhash_of_a_huge_text_keeps_memory_bounded(tmp_path: Path) -> None:
    words, size, k = [], 0, 0
    while size < 20 * 2**20:
        word = f"w{k:x}q"
        words.append(word)
        size += len(word) + 1
        k += 1
    path = tmp_path / "huge.jsonl"
    path.write_text(json.dumps({"id": "huge", "text": " ".join(words)}) + "\n" + json.dumps(_good(0)) + "\n")
    del words
    probe = tmp_path / "probe.py"
    probe.write_text(RSS_PROBE)
    done, elapsed = _timed(
        subprocess.run, [sys.executable, str(probe), sys.executable, "-m", "storyclust", "ingest", "-j", "1", str(path)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < MAX_RSS_MIB
    assert elapsed < 60


# --- 6. every compressed layer goes through the same limit --------------------------------

def _warc_record(body: bytes, headers: str, uri: str) -> bytes:
    http = f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n{headers}\r\n".encode() + body
    return (
        f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {uri}\r\nWARC-Date: 2026-03-01T10:00:00Z\r\n"
        f"WARC-Record-ID: <urn:uuid:{abs(hash(uri)):032x}>\r\nContent-Type: application/http; msgtype=response\r\n"
        f"Content-Length: {len(http)}\r\n\r\n"
    ).encode() + http + b"\r\n\r\n"


def _page(n: int) -> bytes:
    return PAGE.replace("Paragraph", f"Story {n}: paragraph").encode()


def test_content_encoding_inside_warc_is_bounded(tmp_path: Path) -> None:
    """Before: warcio inflated Content-Encoding bodies with no limit."""
    bomb = gzip.compress(b"<html><body>" + b" " * (200 * 2**20))  # 200 MiB of HTML in ~200 KB
    deflated = zlib.compress(_page(3))
    warc = (
        _warc_record(gzip.compress(_page(1)), f"Content-Encoding: gzip\r\nContent-Length: {len(gzip.compress(_page(1)))}\r\n", "http://a/1")
        + _warc_record(bomb, f"Content-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n", "http://a/2")
        + _warc_record(deflated, f"Content-Encoding: deflate\r\nContent-Length: {len(deflated)}\r\n", "http://a/3")
        + _warc_record(b"xx", "Content-Encoding: br\r\nContent-Length: 2\r\n", "http://a/4")
        + _warc_record(_page(5), f"Content-Length: {len(_page(5))}\r\n", "http://a/5")
    )
    path = tmp_path / "crawl.warc.gz"
    path.write_bytes(gzip.compress(warc))
    # every layer stops at max_decompressed_bytes (8 MiB here; a body is also cut at max_html_bytes)
    (items, _), elapsed = _timed(_ingest, [path], max_decompressed_bytes=8 * 2**20, dedupe=False)
    assert elapsed < 10
    kinds = [type(i).__name__ if isinstance(i, Article) else i.reason for i in items]
    assert kinds == ["Article", "decompress_error", "Article", "unsupported", "Article"]
    assert items[1].source == f"{path}#2"


def test_gzip_bomb_file_stops_at_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(json.dumps(_good(0)).encode() + b"\n")
        fh.write(b" " * (300 * 2**20))
    (items, _), elapsed = _timed(_ingest, [path], max_decompressed_bytes=64 * 2**20)
    assert elapsed < 15
    assert isinstance(items[0], Article) and items[-1].reason == "decompress_error"


# --- 7. transient and permanent rejections ----------------------------------------------

def test_transient_reasons() -> None:
    assert set(TRANSIENT_REASONS) == {"timeout", "unreadable", "worker_died"}
    permanent = {"empty", "binary", "no_text", "parse_error", "decode_error", "too_large",
                 "decompress_error", "unsupported", "duplicate"}
    assert set(REJECT_REASONS) == permanent | set(TRANSIENT_REASONS)
    assert all(Rejection("x", r).transient for r in TRANSIENT_REASONS)
    assert not any(Rejection("x", r).transient for r in permanent)


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rpartition(")")[2].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _stalling_corpus(root: Path) -> list[Path]:
    paths = [root / f"stuck-{k}.html" for k in range(2)] + [root / "ok.html"]
    for path in paths:
        path.write_text(PAGE)
    return paths


def test_a_dead_worker_is_a_transient_rejection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker killed by the OS (here: by us, SIGKILL, while it hangs) gives worker_died and is replaced."""
    import multiprocessing
    import threading

    monkeypatch.setenv(STALL_ENV, "stuck-")
    paths = _stalling_corpus(tmp_path)
    before = {p.pid for p in multiprocessing.active_children()}

    def kill_workers() -> None:
        deadline = time.monotonic() + 20
        while len([p for p in multiprocessing.active_children() if p.pid not in before]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)  # both workers hang on their stuck file by now (the watchdog waits 2 * 10 + 2 s)
        for proc in multiprocessing.active_children():
            if proc.pid not in before:
                os.kill(proc.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_workers)
    killer.start()
    (items, _), elapsed = _timed(_ingest, paths, jobs=2, timeout=10)
    killer.join()
    assert [i.reason for i in items[:2]] == ["worker_died", "worker_died"] and items[0].transient
    assert isinstance(items[2], Article)
    assert elapsed < 20  # before the watchdog's 22 s: the deaths were noticed, not waited out


# --- 8. Ctrl-C reaps the workers ----------------------------------------------------------

@pytest.mark.parametrize("group", [False, True], ids=["parent", "process-group"])
def test_ctrl_c_reaps_every_worker(tmp_path: Path, group: bool) -> None:
    paths = _stalling_corpus(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "storyclust", "ingest", "-j", "2", "--timeout", "30", *map(str, paths)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, STALL_ENV: "stuck-"},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while len(_descendants(proc.pid)) < 3 and time.monotonic() < deadline:  # forkserver + 2 workers
            time.sleep(0.1)
        time.sleep(0.5)  # both workers have their stuck file
        seen = _descendants(proc.pid)
        assert len(seen) >= 3
        if group:
            os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        else:
            os.kill(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=10)
        stderr = proc.stderr.read().decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 5  # the forkserver exits when it sees its parent gone
    while _live(seen):
        assert time.monotonic() < deadline, f"survivors: {_live(seen)}"
        time.sleep(0.1)
    assert "Traceback" not in stderr, stderr
    assert code == 130, stderr  # README: 130 = interrupted


def _live(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rpartition(")")[2].split()[0] != "Z":
                    alive.add(pid)
        except OSError:
            pass
    return alive


def test_closing_the_generator_early_reaps_the_workers(tmp_path: Path) -> None:
    import multiprocessing

    paths = [tmp_path / f"{k}.html" for k in range(8)]
    for k, path in enumerate(paths):
        path.write_text(PAGE.replace("Paragraph", f"Copy {k} paragraph"))
    before = {p.pid for p in multiprocessing.active_children()}
    items = ingest_paths([str(p) for p in paths], IngestOptions(jobs=2))
    next(items)
    started = [p for p in multiprocessing.active_children() if p.pid not in before]
    assert started
    items.close()
    assert not _live({p.pid for p in started})


# --- 9. more hostile classes --------------------------------------------------------------

def test_a_100_mb_line_without_newline_on_stdin_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    """The line limit is --max-file-size: the over-long line is skipped chunk by chunk, never held."""
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent("""\
        import resource, subprocess, sys
        good = sys.argv[1].encode()
        cmd = [sys.executable, "-m", "storyclust", "ingest", "-j", "1", "--max-file-size", "4", "-"]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        import threading
        out = []
        reader = threading.Thread(target=lambda: out.append(proc.stdout.read()))
        reader.start()
        proc.stdin.write(good + b"\\n")
        chunk = b"x" * 2**20
        for _ in range(100):
            proc.stdin.write(chunk)
        proc.stdin.write(b"\\n" + sys.argv[2].encode() + b"\\n")
        proc.stdin.close()
        reader.join()
        print(proc.wait(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, out[0].count(b"\\n"))
    """))
    done, elapsed = _timed(subprocess.run, [sys.executable, str(probe), json.dumps(_good(0)), json.dumps(_good(1))],
                           capture_output=True, text=True, timeout=120)
    code, rss_mib, articles = map(int, done.stdout.split())
    assert code == 3 and articles == 2  # both good lines; the long one is too_large
    assert rss_mib < 400
    assert elapsed < 60


def test_long_line_between_good_lines(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps(_good(0)) + "\n" + "x" * (3 * 2**20) + "\n" + json.dumps(_good(1)) + "\n")
    items, _ = _ingest([path], max_file_bytes=2**20 + 1, dedupe=False)
    assert [getattr(i, "reason", "article") for i in items] == ["too_large"]  # the file itself is too large
    items = list(iter_jsonl(io.BytesIO(path.read_bytes()), "s", max_line_bytes=2**20))
    assert [(loc, error.reason if error else None) for loc, _, error in items] == [
        ("s#1", None), ("s#2", "too_large"), ("s#3", None)]


def test_folder_with_symlink_loop_fifo_and_unreadable_entries(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "loop").symlink_to(root)
    (root / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(root / "pipe.jsonl")  # opening it would block forever
    (root / "a.html").write_text(PAGE)
    (items, _), elapsed = _timed(_ingest, [root], timeout=2)
    assert elapsed < 10
    reasons = {Path(i.path if isinstance(i, Article) else i.source).name: getattr(i, "reason", "article") for i in items}
    assert reasons == {"a.html": "article", "dangling": "unreadable", "pipe.jsonl": "unreadable"}


def test_deeply_nested_html_and_json_files(tmp_path: Path) -> None:
    nested = tmp_path / "nested.html"
    nested.write_text("<html><body>" + "<div>" * 1_000_000 + GOOD + "</div>" * 1_000_000 + "</body></html>")
    deep_json = tmp_path / "deep.json"
    deep_json.write_text("[" * 200_000 + "]" * 200_000)
    good = tmp_path / "z.html"
    good.write_text(PAGE)
    (items, _), elapsed = _timed(_ingest, [nested, deep_json, good], timeout=10)
    assert elapsed < 30
    assert isinstance(items[0], (Article, Rejection))  # whatever libxml2 makes of it, no crash
    assert items[1].reason == "parse_error" and isinstance(items[2], Article)


def test_warc_with_lying_content_length(tmp_path: Path) -> None:
    records = [_warc_record(_page(k), f"Content-Length: {len(_page(k))}\r\n", f"http://b/{k}") for k in range(3)]
    true_length = len(records[1].split(b"\r\n\r\n", 1)[1]) - 4
    claim = b"Content-Length: %d\r\n" % true_length
    assert claim in records[1]
    longer = records[1].replace(claim, b"Content-Length: %d\r\n" % (true_length * 10), 1)  # swallows record 3
    shorter = records[1].replace(claim, b"Content-Length: %d\r\n" % (true_length // 2), 1)  # record 2's rest = junk
    for name, middle in (("long", longer), ("short", shorter)):
        path = tmp_path / f"{name}.warc"
        path.write_bytes(records[0] + middle + records[2])
        (items, _), elapsed = _timed(_ingest, [path], dedupe=False)
        assert elapsed < 10
        kinds = [i.url if isinstance(i, Article) else i.reason for i in items]
        if name == "long":  # record 2 swallows record 3: said so, for the record after the last one read
            assert kinds == ["http://b/0", "http://b/1", "parse_error"] and items[2].source == f"{path}#3"
        else:  # warcio finds the next record again after the junk
            assert kinds == ["http://b/0", "http://b/1", "http://b/2"]


def test_truncated_and_empty_gzip(tmp_path: Path) -> None:
    truncated = tmp_path / "cut.jsonl.gz"
    data = gzip.compress("".join(json.dumps(_good(k)) + "\n" for k in range(100)).encode())
    truncated.write_bytes(data[: len(data) * 2 // 3])
    empty = tmp_path / "empty.html.gz"
    empty.write_bytes(gzip.compress(b""))
    items, _ = _ingest([truncated, empty], dedupe=False)
    assert isinstance(items[0], Article)
    # the line cut in half, then where the stream ends, then the empty file
    assert [i.reason for i in items if isinstance(i, Rejection)] == ["parse_error", "decompress_error", "empty"]
