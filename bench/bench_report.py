"""Report and label speed on 10,000 synthetic stories: HTML size, render time, label time.

    .venv/bin/python bench/bench_report.py [--stories 10000] [--out /tmp/report-10k.html]

Stories have 1-12 articles (most small, as real nights: about 3 on average) in 8 languages over
30 days, with 70-character titles, URLs, sources and 600 characters of text (labels read text;
the report does not). Targets: under 10 MB and 10 s for the report.
"""
from __future__ import annotations

import argparse
import random
import time
from datetime import datetime, timedelta, timezone

from storyclust.labels import story_labels
from storyclust.report import render_report
from storyclust.types import Article, Story, StoryMember

LANGS = ["en", "fr", "es", "de", "id", "ru", "zh", "ar"]
WORDS = ("flood quake vote budget strike market festival court minister harbour bridge election storm "
         "contract railway vaccine drought wildfire summit tariff").split()


def synthetic(n: int, seed: int = 7) -> list[Story]:
    rng = random.Random(seed)
    t0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
    stories = []
    for i in range(n):
        size = min(12, 1 + int(rng.expovariate(0.5)))
        topic = rng.sample(WORDS, 3)
        start = t0 + timedelta(minutes=rng.randrange(30 * 24 * 60))
        members = []
        for j in range(size):
            lang = rng.choice(LANGS)
            title = f"{topic[0].title()} in Town{i} hits {rng.randrange(10, 99_999)} as {topic[1]} {topic[2]} grows"
            text = (f"Town{i} ({lang}) - The {topic[0]} reported by Agency{i % 50} on day {j} left "
                    f"{rng.randrange(2, 500)} people affected, said Officer Name{i}. " * 5)[:600]
            members.append(StoryMember(Article(
                id=f"a{i:05d}-{j:02d}", text=text, title=title[:70], lang=lang,
                url=f"https://news{i % 40}.example.org/{lang}/2026/{i:05d}/{j:02d}-{topic[0]}",
                source=f"news{i % 40}.example.org", published=start + timedelta(hours=rng.randrange(72)),
                duplicate_of=f"a{i:05d}-00" if j and rng.random() < 0.05 else None), round(rng.uniform(0.5, 1), 4)))
        stories.append(Story(f"s_{i:012x}", tuple(members), singleton=size == 1))
    return stories


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", type=int, default=10_000)
    parser.add_argument("--out", default=None, help="also write the page here")
    args = parser.parse_args()
    stories = synthetic(args.stories)
    n_articles = sum(s.size for s in stories)
    start = time.perf_counter()
    labels = story_labels(stories)
    t_labels = time.perf_counter() - start
    stories = [Story(s.story_id, s.members, s.singleton, labels=labels[s.story_id]) for s in stories]
    start = time.perf_counter()
    page = render_report(stories, title=f"{args.stories:,} synthetic stories")
    t_render = time.perf_counter() - start
    size = len(page.encode("utf-8"))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(page)
    print(f"stories {len(stories):,}  articles {n_articles:,}")
    print(f"labels  {t_labels:6.2f} s   ({t_labels / len(stories) * 1e6:.0f} us/story)")
    print(f"report  {t_render:6.2f} s   {size / 1e6:.2f} MB  ({size / n_articles:.0f} bytes/article)")


if __name__ == "__main__":
    main()
