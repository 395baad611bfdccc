"""The ``storyclust report`` and ``storyclust explain`` commands: thin click shells over the library.

``cli.py`` registers them (``cli.add_command(report_command, "report")``); they also run on their own.
Every option can be set through the ``STORYCLUST_*`` variable shown in ``--help``. Exit codes: 0 done,
1 failure (unreadable input, unusable state, article not found, output not written), 2 bad usage.
"""
from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from typing import Optional

import click
from click.core import ParameterSource

from ..clickutil import datetime_param, env, verbosity, window_param
from ..schema import dumps, iter_jsonl, record_to_article, record_to_story
from ..types import SCHEMA_VERSION, Article, Story
from ..write import open_output
from .html import TIMELINE_LIMIT, render_report
from .load import read_stories, select_stories, stories_from_state

log = logging.getLogger("storyclust")


def _quiet(ctx: click.Context) -> bool:
    return verbosity(ctx) < 0


class _Progress:
    """One self-overwriting progress line on stderr, only on a terminal and only for large inputs."""

    def __init__(self, enabled: bool, minimum: int = 1000) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.minimum = minimum
        self.shown = False

    def read(self, n: int) -> None:
        self._say(f"report: read {n:,} stories", n)

    def render(self, done: int, total: int) -> None:
        self._say(f"report: rendered {done:,}/{total:,} stories", total)

    def _say(self, text: str, size: int) -> None:
        if self.enabled and size >= self.minimum:
            sys.stderr.write("\r\x1b[K" + text)
            sys.stderr.flush()
            self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


@click.command("report", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("input", required=False, type=click.Path(allow_dash=True, dir_okay=False))
@click.option("--state", type=click.Path(exists=True, dir_okay=False), default=None, envvar=env("STATE"),
              show_envvar=True, help="Report the stories kept in this state file instead of a JSONL input.")
@click.option("--open-only", is_flag=True, default=False, help="With --state: only the open stories.")
@click.option("--since", default=None, envvar=env("SINCE"), show_envvar=True, callback=window_param,
              help="Only stories active within this long before --now (7d, 36h, 90m, 1w).")
@click.option("--now", default=None, envvar=env("NOW"), show_envvar=True, callback=datetime_param,
              help="The date --since counts back from, ISO 8601 [default: now, UTC].")
@click.option("--min-size", type=click.IntRange(min=1), default=1, show_default=True, envvar=env("MIN_SIZE"),
              show_envvar=True, help="Leave out stories with fewer articles.")
@click.option("--title", default="storyclust report", show_default=True, envvar=env("REPORT_TITLE"),
              show_envvar=True, help="Title of the page.")
@click.option("--timeline-limit", type=click.IntRange(min=1), default=TIMELINE_LIMIT, show_default=True,
              envvar=env("TIMELINE_LIMIT"), show_envvar=True,
              help="Draw at most this many stories (the largest) on the timeline; the table lists all.")
@click.option("--labels/--no-labels", "fill_labels", default=True, show_default=True, envvar=env("REPORT_LABELS"),
              show_envvar=True, help="Compute labels for stories whose records carry none.")
@click.option("-o", "--output", default="-", show_default=True, envvar=env("REPORT_OUTPUT"), show_envvar=True,
              type=click.Path(dir_okay=False, allow_dash=True), help="Write the HTML here (atomically); - is stdout.")
@click.pass_context
def report_command(ctx, input, state, open_only, since, now, min_size, title, timeline_limit, fill_labels, output):
    """Write one self-contained HTML page (works offline) of stories: a timeline, a table, their articles.

    INPUT is a stories JSONL file (from `storyclust cluster`, `run` or `stories`), - (the default) for
    stdin; or use --state to report a state file.

    \b
      storyclust run wires/ | storyclust report -o report.html
      storyclust report --state news.db --since 7d -o week.html
    """
    if state and input is not None:
        if ctx.get_parameter_source("state") == ParameterSource.ENVIRONMENT:
            state = None  # an explicit INPUT wins over STORYCLUST_STATE
        else:
            raise click.UsageError("give INPUT or --state, not both")
    if open_only and not state:
        raise click.UsageError("--open-only needs --state")
    progress = _Progress(not _quiet(ctx))
    if state:
        from ..store import StateError

        try:
            stories = stories_from_state(state, include_closed=not open_only)
        except StateError as exc:
            raise click.ClickException(str(exc)) from exc
        source = state
    else:
        source = input or "-"
        if source == "-" and sys.stdin.isatty():
            raise click.UsageError("no input: give a stories JSONL file, pipe one in, or use --state FILE")
        try:
            with click.open_file(source, "r", encoding="utf-8", errors="replace") as fh:
                stories, stats = read_stories(fh, source, progress=progress.read)
        except OSError as exc:
            raise click.ClickException(f"cannot read {source}: {exc}") from exc
        if stats.errors:
            log.warning("report: %d line%s of %s could not be read as stories", stats.errors,
                        "s" * (stats.errors != 1), source)
        if stats.skipped and not stories:
            raise click.ClickException(f"{source} holds no story records ({stats.skipped} records of other types)")
    now = now or datetime.now(timezone.utc)
    stories = select_stories(stories, since=since, now=now, min_size=min_size)
    if fill_labels and any(not s.labels for s in stories):
        stories = _with_labels(stories)
    page = render_report(stories, title=title, timeline_limit=timeline_limit, progress=progress.render)
    progress.done()
    try:
        with open_output(output) as fh:
            fh.write(page)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc}") from exc
    log.info("report: %d stories (%d articles) from %s -> %s (%.1f KiB)", len(stories),
             sum(s.size for s in stories), source, "stdout" if output in (None, "-") else output,
             len(page.encode("utf-8")) / 1024)


def _with_labels(stories: list[Story]) -> list[Story]:
    """``stories`` with labels computed (against each other) for those that have none."""
    import dataclasses

    from ..labels import story_labels

    labels = story_labels(stories)
    return [s if s.labels else dataclasses.replace(s, labels=labels.get(s.story_id, ())) for s in stories]


# -- explain ---------------------------------------------------------------------------------------


def _from_jsonl(path: str, wanted: tuple[str, str]) -> dict[str, dict]:
    """``{id: {"article", "story", "member"}}`` for the wanted ids found in a stories or articles JSONL."""
    found: dict[str, dict] = {}
    with click.open_file(path, "r", encoding="utf-8", errors="replace") as fh:
        for loc, record, error in iter_jsonl(fh, path):
            if record is None:
                continue
            kind = record.get("type")
            if kind == "story" or (kind is None and "story_id" in record and "articles" in record):
                ids = {str(e.get("id")) for e in record.get("articles") or [] if isinstance(e, dict)}
                if not ids & set(wanted):
                    continue
                try:
                    story = record_to_story(record)
                except ValueError as exc:
                    log.warning("%s: %s", loc, exc)
                    continue
                for member in story.members:
                    if member.article.id in wanted:
                        entry = found.setdefault(member.article.id, {})
                        entry.setdefault("article", member.article)
                        entry["story"] = story
                        entry["member"] = member
            elif kind in (None, "article") and str(record.get("id")) in wanted:
                try:
                    article = record_to_article(record)
                except ValueError as exc:
                    log.warning("%s: %s", loc, exc)
                    continue
                found.setdefault(article.id, {})["article"] = article  # full text beats a story entry
    return found


@click.command("explain", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("id_a")
@click.argument("id_b")
@click.option("--state", type=click.Path(exists=True, dir_okay=False), default=None, envvar=env("STATE"),
              show_envvar=True, help="State file: read both articles, their stories and vectors (no model loaded).")
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False, allow_dash=True), default=None,
              help="Stories or articles JSONL holding both articles (no vectors: numbers, names, dates).")
@click.option("-m", "--model", default=None, envvar=env("MODEL"), show_envvar=True,
              help="With --input: embed both articles with this model to give their cosine too "
                   "(default model: 'default').")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.pass_context
def explain_command(ctx, id_a, id_b, state, input_path, model, as_json):
    """Say why articles ID_A and ID_B are (or are not) in one story.

    Shows their cosine in the language-neutral space, the numbers and names they share, how far
    apart they were published, their stories and which step put each there.

    \b
      storyclust explain e1 e2 --state news.db
      storyclust explain e1 e2 --input stories.jsonl --json
    """
    from ..explain import cosine_from_model, explain_pair, format_explanation

    if state and input_path:
        if ctx.get_parameter_source("state") == ParameterSource.ENVIRONMENT:
            state = None
        else:
            raise click.UsageError("give --state or --input, not both")
    if not state and not input_path:
        raise click.UsageError("give --state DB or --input FILE")
    if state and model and ctx.get_parameter_source("model") == ParameterSource.COMMANDLINE:
        raise click.UsageError("--model is for --input: a state file already holds the vectors")
    if state:
        result = _explain_from_state(state, id_a, id_b, explain_pair)
    else:
        try:
            found = _from_jsonl(input_path, (id_a, id_b))
        except OSError as exc:
            raise click.ClickException(f"cannot read {input_path}: {exc}") from exc
        missing = [i for i in (id_a, id_b) if i not in found]
        if missing:
            raise click.ClickException(f"not in {input_path}: {', '.join(missing)}")
        ea, eb = found[id_a], found[id_b]
        a, b = ea["article"], eb["article"]
        result = explain_pair(a, b, story_a=ea.get("story"), story_b=eb.get("story"))
        if model:
            result["cosine"] = round(_model_cosine(model, a, b, cosine_from_model), 4)
            result["cosine_from"] = "model"
    if as_json:
        click.echo(dumps({"schema_version": SCHEMA_VERSION, "type": "explanation", **result}))
    else:
        click.echo(format_explanation(result))


def _explain_from_state(state: str, id_a: str, id_b: str, explain_pair) -> dict:
    from ..store import SQLiteStore, StateError, open_store

    if not hasattr(SQLiteStore, "member_info"):
        raise click.ClickException("this storyclust cannot read members from a state file yet (no member_info)")
    try:
        with open_store(state) as store:
            infos = {i: store.member_info(i) for i in (id_a, id_b)}
            corrections = store.corrections()
    except StateError as exc:
        raise click.ClickException(str(exc)) from exc
    missing = [i for i, info in infos.items() if info is None]
    if missing:
        raise click.ClickException(f"in no story of {state}: {', '.join(missing)}")
    ia, ib = infos[id_a], infos[id_b]
    result = explain_pair(ia.article, ib.article, vector_a=ia.vector, vector_b=ib.vector, story_a=ia.story_id,
                          story_b=ib.story_id, joined_by_a=ia.joined_by, joined_by_b=ib.joined_by)
    for side, info in (("a", ia), ("b", ib)):
        similarity = getattr(info, "similarity", None)
        if similarity is not None:
            result[side]["similarity"] = round(float(similarity), 4)
    result["cosine_from"] = "state"
    result["correction"] = _correction_of(id_a, id_b, corrections)
    return result


def _correction_of(id_a: str, id_b: str, corrections) -> Optional[dict]:
    """What an editor's corrections say of the pair: ``{"decides": "link"|"unlink", "corrections": [...]}``."""
    from ..corrections import correction_to_record, decided_by

    decided = decided_by(id_a, id_b, corrections)
    if decided is None:
        return None
    kind, chain = decided
    return {"decides": kind, "corrections": [correction_to_record(c) for c in chain]}


def _model_cosine(model: str, a: Article, b: Article, cosine_from_model) -> float:
    from ..embed import load_embedder

    if not a.text.strip() or not b.text.strip():
        log.warning("explain: an article has no text in the input; embedding its title only")
    try:
        embedder = load_embedder(None if model == "default" else model)
    except Exception as exc:  # environment problem: cannot go on
        raise click.ClickException(f"cannot load embedding model {model}: {exc}") from exc
    return cosine_from_model(a, b, embedder)

