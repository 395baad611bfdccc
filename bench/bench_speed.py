"""Whole commands against their plain equivalents, in one run: `make bench-speed`.

Prints, side by side and with the CPU it ran on:

1. **cluster vs the plain recipe**: ``storyclust -v cluster articles.jsonl`` against
   ``bench/plain_recipe.py`` (sentence-transformers fp32 + HDBSCAN, same model, same articles),
   each a fresh process (imports, model load, reference means included; the one-time model
   conversion and ONNX export are done by a warm-up run first), in alternating order over
   ``--rounds`` rounds: wall and CPU seconds, peak RSS, articles/s, the ratio of medians, and
   storyclust's cost per stage (the ``stages:`` line that ``-v`` logs, see storyclust.timing);
2. **start-up**: ``storyclust cluster`` on 10 of the articles;
3. **nightly**: ``storyclust run --state`` over a folder holding the articles (first run), then
   the unchanged rerun;
4. **ingest vs bare trafilatura** on generated news pages (bench/bench_ingest.py: several site
   layouts and languages, real-world boilerplate), same processes, alternating rounds, with the
   per-stage cost of storyclust's ingest.

The articles are ``--articles`` distinct articles of ``../shared/eval/semeval_dev.csv`` (seeded
sample; real multilingual news) when it is there, else the articles storyclust extracts from
generated pages.

    python bench/bench_speed.py [--articles 700] [--rounds 3] [--pages 1000] [--jobs 2] [--skip ingest nightly]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_ingest  # noqa: E402  (bench/ is not a package)

from storyclust.timing import parse_summary, summary_line  # noqa: E402

DEV_CSV = HERE.parents[1] / "shared" / "eval" / "semeval_dev.csv"
SECTIONS = ("cluster", "startup", "nightly", "ingest")


def cpu_line() -> str:
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    wanted = [f for f in ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx512f", "avx2") if f in flags]
    from storyclust.embed import auto_backend

    return f"{bench_ingest.cpu_model()}; flags {' '.join(wanted) or 'none of note'}; auto backend {auto_backend()}"


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def write_articles(path: Path, n: int, seed: int = 0) -> str:
    """``n`` articles as JSONL at ``path``; returns where they came from."""
    if DEV_CSV.exists():
        from storyclust.evaluate import load_semeval

        articles = [a for a in load_semeval(str(DEV_CSV)).articles if a.text.strip()]
        random.Random(seed).shuffle(articles)
        chosen = articles[:n]
        with open(path, "w", encoding="utf-8") as fh:
            for a in chosen:
                fh.write(json.dumps({"id": a.id, "text": a.text, "lang": a.lang}, ensure_ascii=False) + "\n")
        return f"{len(chosen)} articles of {DEV_CSV.name} (seed {seed})"
    from storyclust.ingest import IngestOptions, ingest_paths
    from storyclust.schema import article_to_record
    from storyclust.types import Article

    pages = path.parent / "pages-for-articles"
    bench_ingest.generate(pages, n, seed=seed)
    articles = [a for a in ingest_paths([str(pages)], IngestOptions()) if isinstance(a, Article)][:n]
    with open(path, "w", encoding="utf-8") as fh:
        for a in articles:
            fh.write(json.dumps(article_to_record(a), ensure_ascii=False) + "\n")
    return f"{len(articles)} articles extracted from generated pages (no {DEV_CSV} here)"


def timed(cmd: list[str], env: Optional[dict] = None) -> dict:
    """Run ``cmd`` (stdout discarded, stderr kept); wall and CPU seconds, peak RSS of the process."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    if proc.returncode not in (0, 3):  # 3: some input rejected, the run went on
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{stderr[-2000:]}")
    stages = {}
    for line in stderr.splitlines():
        if "stages:" in line:
            stages = parse_summary(line)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024,
            "stages": stages}


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _median_stages(runs: list[dict]) -> str:
    names = list(runs[0]["stages"])
    medians = {k: statistics.median(r["stages"].get(k, 0.0) for r in runs) for k in names}
    return summary_line(medians).split(": ", 1)[1]


def section_cluster(articles: Path, n: int, rounds: int) -> None:
    storyclust = [sys.executable, "-m", "storyclust", "-v", "cluster", str(articles)]
    plain = [sys.executable, str(HERE / "plain_recipe.py"), str(articles)]
    print(f"\n## 1. Whole command on {n} articles: storyclust cluster vs the plain recipe "
          f"({rounds} rounds, alternating; medians)")
    timed(storyclust[:3] + ["cluster", str(articles)])  # warm-up: model conversion/export happen once per machine
    runs: dict[str, list[dict]] = {"storyclust": [], "plain": []}
    for r in range(rounds):
        order = ("storyclust", "plain") if r % 2 == 0 else ("plain", "storyclust")
        for side in order:
            runs[side].append(timed(storyclust if side == "storyclust" else plain))
        print(f"  round {r + 1}: storyclust {runs['storyclust'][-1]['wall']:.1f} s, plain {runs['plain'][-1]['wall']:.1f} s"
              f" (load {load_average()})", flush=True)
    print(f"{'':<28}{'wall s':>9}{'cpu s':>9}{'peak MiB':>10}{'articles/s':>12}")
    for side, label in (("storyclust", "storyclust cluster"), ("plain", "plain recipe (ST fp32+HDBSCAN)")):
        w = _median(runs[side], "wall")
        print(f"{label:<28}{w:>9.1f}{_median(runs[side], 'cpu'):>9.1f}{_median(runs[side], 'rss_mib'):>10.0f}{n / w:>12.1f}")
    ratio = statistics.median(p["wall"] / s["wall"] for p, s in zip(runs["plain"], runs["storyclust"]))
    print(f"storyclust is {ratio:.2f}x the plain recipe (median of per-round wall ratios)")
    print(f"storyclust cost per stage (median): {_median_stages(runs['storyclust'])}")


def section_startup(articles: Path, tmp: Path) -> None:
    ten = tmp / "ten.jsonl"
    with open(articles, encoding="utf-8") as src, open(ten, "w", encoding="utf-8") as dst:
        for _, line in zip(range(10), src):
            dst.write(line)
    runs = [timed([sys.executable, "-m", "storyclust", "-v", "cluster", str(ten)]) for _ in range(3)]
    stages = _median_stages(runs)
    print(f"\n## 2. Start-up: storyclust cluster on 10 articles: {_median(runs, 'wall'):.2f} s wall "
          f"(median of 3), peak {_median(runs, 'rss_mib'):.0f} MiB; {stages}")


def section_nightly(articles: Path, tmp: Path) -> None:
    folder = tmp / "night"
    folder.mkdir()
    shutil.copy(articles, folder / "wires.jsonl")
    state = tmp / "state.db"
    cmd = [sys.executable, "-m", "storyclust", "-v", "run", "--state", str(state), str(folder)]
    first = timed(cmd)
    again = [timed(cmd) for _ in range(3)]
    w = _median(again, "wall")
    print(f"\n## 3. Nightly: run --state, first run {first['wall']:.1f} s (peak {first['rss_mib']:.0f} MiB), "
          f"unchanged rerun {w:.2f} s (median of 3, peak {_median(again, 'rss_mib'):.0f} MiB): "
          f"{first['wall'] / w:.1f}x faster")


def section_ingest(pages: int, jobs: int, rounds: int, tmp: Path) -> None:
    folder = tmp / "pages"
    bench_ingest.generate(folder, pages)
    print(f"\n## 4. Ingest vs bare trafilatura on {pages} generated news pages")
    for j in sorted({1, jobs}, reverse=True):
        bench_ingest.compare_with_bare(folder, j, rounds=rounds, breakdown=(j == 1))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=700)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip", nargs="*", default=[], choices=SECTIONS)
    args = parser.parse_args(argv)
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    print(f"# storyclust bench-speed, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}")
    print(f"# {cpu_line()}; load average {load_average()}")
    with tempfile.TemporaryDirectory(prefix="storyclust-bench-speed-") as tmp_name:
        tmp = Path(tmp_name)
        articles = tmp / "articles.jsonl"
        source = write_articles(articles, args.articles)
        n = sum(1 for _ in open(articles, encoding="utf-8"))
        print(f"# articles: {source}")
        if "cluster" not in args.skip:
            section_cluster(articles, n, args.rounds)
        if "startup" not in args.skip:
            section_startup(articles, tmp)
        if "nightly" not in args.skip:
            section_nightly(articles, tmp)
        if "ingest" not in args.skip:
            section_ingest(args.pages, args.jobs, args.rounds, tmp)
    print(f"\n# done; load average {load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
