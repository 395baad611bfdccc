"""Worker processes: same output as in-process, input order, and time limits on real slow pages."""
from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storyclust.ingest import IngestOptions, IngestStats, ingest_paths
from storyclust.types import Article, Rejection

TOPICS = [
    ("Harbour strike enters second week", "Dock workers extended their strike into a second week on Monday, leaving container ships waiting outside the harbour."),
    ("New museum opens its doors", "The city's new science museum opened on Saturday with a robotics hall and a planetarium built into the old gasworks."),
    ("Farmers warn of poor harvest", "Grain farmers warned that the dry spring could cut this year's wheat harvest by a third compared with last season."),
    ("Rail line to reopen in autumn", "The coastal rail line closed by landslides last winter will reopen in the autumn after repairs to three bridges."),
    ("Hospital waiting lists fall", "Waiting lists at public hospitals fell for the fourth month in a row as new operating theatres came into use."),
    ("Tech firm cuts jobs", "A software company announced it would cut four hundred jobs as demand for its accounting tools slowed this year."),
]


def _html(title: str, sentence: str, n: int) -> str:
    paragraphs = "".join(f"<p>{sentence} Paragraph {k} adds detail number {k * n + 7}.</p>" for k in range(4))
    return (
        f"<html><head><title>{title}</title></head><body><nav><a href='/'>Home</a></nav>"
        f"<article><h1>{title}</h1>{paragraphs}</article><footer>Contact us</footer></body></html>"
    )


def _mixed_corpus(root: Path) -> None:
    """A folder with good and bad files of every kind, including duplicates."""
    for n, (title, sentence) in enumerate(TOPICS):
        (root / f"{n:02d}.html").write_text(_html(title, sentence, n))
    (root / "06-copy.html").write_text(_html(*TOPICS[0], 0))
    (root / "07.txt").write_text(TOPICS[1][0] + "\n\n" + (TOPICS[1][1] + " ") * 3)
    (root / "08.jsonl").write_text(
        "".join(json.dumps({"id": f"j{k}", "text": (TOPICS[k][1] + " ") * 2}) + "\n" for k in range(2, 5)) + "{oops\n"
    )
    (root / "09.html.gz").write_bytes(gzip.compress(_html(*TOPICS[5], 9).encode()))
    (root / "10.bin").write_bytes(os.urandom(2000))
    (root / "11.txt").write_text("")
    (root / "12.html").write_text("<html><body><nav>Home</nav></body></html>")


def _run(paths: list[Path | str], options: IngestOptions) -> tuple[list[Article | Rejection], IngestStats]:
    stats = IngestStats()
    items = list(ingest_paths([str(p) for p in paths], options, stats=stats))
    return items, stats


def test_one_and_two_jobs_give_identical_output(tmp_path: Path) -> None:
    _mixed_corpus(tmp_path)
    serial, serial_stats = _run([tmp_path], IngestOptions(jobs=1))
    parallel, parallel_stats = _run([tmp_path], IngestOptions(jobs=2))
    assert parallel == serial
    assert parallel_stats == serial_stats
    assert serial_stats.files_seen == 13
    assert serial_stats.records_seen == serial_stats.articles + sum(serial_stats.rejects.values()) == 16
    assert serial_stats.rejects["duplicate"] >= 1 and serial_stats.rejects["binary"] == 1


def test_stdin_keeps_its_place_among_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, last = tmp_path / "a.html", tmp_path / "b.html"
    first.write_text(_html(*TOPICS[0], 1))
    last.write_text(_html(*TOPICS[1], 2))
    payload = json.dumps({"id": "from-stdin", "text": (TOPICS[2][1] + " ") * 2}) + "\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload.encode())))
    items, _ = _run([first, "-", last], IngestOptions(jobs=2))
    assert [a.path for a in items] == [str(first), None, str(last)]
    assert items[1].id == "from-stdin"


def _python_slow_page(path: Path) -> None:
    """Tens of thousands of tiny blocks: trafilatura spends 10+ s in Python loops on it (15 s on a 2-core
    EPYC: 75x the 0.2 s limit below, which a normal page meets 50x over: 4 ms)."""
    path.write_text("<html><body>" + "<div><span>word</span> text <a href='#'>link</a></div>\n" * 40000 + "</body></html>")


def test_slow_page_times_out_in_process(tmp_path: Path) -> None:
    slow, good = tmp_path / "slow.html", tmp_path / "good.html"
    _python_slow_page(slow)
    good.write_text(_html(*TOPICS[3], 3))
    started = time.monotonic()
    items, _ = _run([slow, good], IngestOptions(jobs=1, timeout=0.2))
    assert time.monotonic() - started < 5
    assert isinstance(items[0], Rejection) and items[0].reason == "timeout" and items[0].source == str(slow)
    assert isinstance(items[1], Article)


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_worker_stuck_in_c_code_is_killed_and_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker that hangs where SIGALRM cannot reach it is killed by the watchdog and replaced.

    The hang does not depend on the machine: the STORYCLUST_TEST_STALL hook makes the worker
    block SIGALRM and sleep in C (as inside a long libxml2 call), so only the parent's
    watchdog can end it, after 2 * timeout + 2 s of silence whatever the CPU.
    """
    import multiprocessing

    from storyclust.ingest.parallel import STALL_ENV

    stuck = [tmp_path / f"stuck-here-{k}.html" for k in range(2)]  # one for each worker
    for k, path in enumerate(stuck):
        path.write_text(_html(*TOPICS[4 + k], 4 + k))  # good pages: only the hook makes them hang
    others = [tmp_path / f"ok{k}.html" for k in range(3)]
    for k, path in enumerate(others):
        path.write_text(_html(*TOPICS[k], k))
    monkeypatch.setenv(STALL_ENV, "stuck-here")
    options = IngestOptions(jobs=2, timeout=0.5)  # worker killed after 2 * 0.5 + 2 = 3 s of silence
    before = {p.pid for p in multiprocessing.active_children()}
    started = time.monotonic()
    items, stats = _run([*stuck, *others], options)
    elapsed = time.monotonic() - started
    for item in items[:2]:
        assert isinstance(item, Rejection) and item.reason == "timeout" and "killed" in item.detail
        assert item.transient
    assert [type(i) for i in items[2:]] == [Article, Article, Article]  # read by the two replacements
    assert 3.0 <= elapsed < 3.0 + 6  # the watchdog's 3 s (both in parallel), plus slack for new workers
    assert stats.records_seen == 5
    assert not [p for p in multiprocessing.active_children() if p.pid not in before and _alive(p.pid)]


def test_slow_consumer_does_not_get_workers_killed(tmp_path: Path) -> None:
    paths = [tmp_path / f"{k}.html" for k in range(6)]
    for k, path in enumerate(paths):
        path.write_text(_html(*TOPICS[k], k))
    items = []
    # A 1 s limit: a normal page needs ~4 ms, so no page times out even on a slow, busy machine.
    for item in ingest_paths([str(p) for p in paths], IngestOptions(jobs=2, timeout=1.0)):
        if not items:
            time.sleep(4.5)  # longer than the 2 * 1 + 2 s silence limit
        items.append(item)
    assert all(isinstance(i, Article) for i in items) and len(items) == 6


SCRIPT_WITHOUT_MAIN_GUARD = """\
import json, sys
from storyclust.ingest import IngestOptions, ingest_paths

items = list(ingest_paths([sys.argv[1]], IngestOptions(jobs=2)))
print(json.dumps([[type(item).__name__, getattr(item, "reason", None)] for item in items]))
"""


def test_script_without_main_guard_gets_real_articles_from_workers(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for k in range(4):
        (corpus / f"{k}.html").write_text(_html(*TOPICS[k], k))
    script = tmp_path / "plain_script.py"
    script.write_text(SCRIPT_WITHOUT_MAIN_GUARD)
    done = subprocess.run(
        [sys.executable, str(script), str(corpus)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [["Article", None]] * 4
    assert "Safe importing of main module" not in done.stderr


def test_workers_shingle_and_the_parent_only_looks_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With workers, each article's MinHash signature is computed where it was read, in parallel: the parent's
    near-copy check shingles nothing, finds the same copies and hands on the same signatures."""
    from collections import Counter

    from storyclust.ingest import dedupe

    _mixed_corpus(tmp_path)
    near = _html(*TOPICS[2], 2).replace("Paragraph 3 adds", "Paragraph 3 now adds")  # a light edit of 02.html
    (tmp_path / "13.html").write_text(near)
    serial_signatures: dict = {}
    serial = list(ingest_paths([str(tmp_path)], IngestOptions(jobs=1), signatures=serial_signatures))
    shingled: Counter[str] = Counter()
    real = dedupe.shingle_hashes
    monkeypatch.setattr(dedupe, "shingle_hashes", lambda text: (shingled.update([text]), real(text))[1])
    parallel_signatures: dict = {}
    parallel = list(ingest_paths([str(tmp_path)], IngestOptions(jobs=2), signatures=parallel_signatures))
    assert parallel == serial and any(getattr(a, "duplicate_of", None) for a in parallel)
    assert not shingled  # every file was read, and shingled, by a worker
    assert parallel_signatures.keys() == serial_signatures.keys() and len(serial_signatures) >= 8
    assert all((a is None and b is None) or (a == b).all()
               for a, b in ((serial_signatures[k], parallel_signatures[k]) for k in serial_signatures))


def test_a_signature_that_fails_costs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Signing in the worker is an optimisation: if it raises, the article comes unsigned (the parent signs
    it) and the rest of the file is read as usual, not turned into a ``parse_error``."""
    from storyclust.ingest import dedupe
    from storyclust.ingest.parallel import read_task

    _mixed_corpus(tmp_path)
    path = str(tmp_path / "08.jsonl")
    signed = list(read_task(path, IngestOptions(), sign=True))
    assert [len(located.signed) for located in signed] == [1, 1, 1, 0]  # three articles, one bad record

    def broken(self, article):
        raise MemoryError("no room to shingle")

    monkeypatch.setattr(dedupe.Deduplicator, "signature", broken)
    unsigned = list(read_task(path, IngestOptions(), sign=True))
    assert [located.item for located in unsigned] == [located.item for located in signed]
    assert all(located.signed == () for located in unsigned)
