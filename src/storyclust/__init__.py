"""storyclust: group multilingual news articles into stories.

The library API, stage by stage (the CLI uses nothing else)::

    from storyclust import ingest_paths, load_embedder, cluster_articles, Article

    items = list(ingest_paths(["wires/"]))
    articles = [a for a in items if isinstance(a, Article)]
    stories = cluster_articles(articles, load_embedder())

Heavy dependencies (torch, sentence-transformers) are imported only when an
embedder is loaded, so ``import storyclust`` stays fast.
"""
from .types import SCHEMA_VERSION, Article, Rejection, Story, StoryMember, content_hash
from .ingest import IngestOptions, IngestStats, ingest_paths
from .embed import Embedder, embed_articles, load_embedder
from .settings import ClusterOptions, EmbedOptions, OutputOptions, StateOptions
from .cluster import StoryClusterer
from .pipeline import cluster_articles
from .evaluate import evaluate_labels, evaluate_semeval

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "Article",
    "Rejection",
    "Story",
    "StoryMember",
    "content_hash",
    "IngestOptions",
    "IngestStats",
    "ingest_paths",
    "Embedder",
    "embed_articles",
    "load_embedder",
    "ClusterOptions",
    "EmbedOptions",
    "OutputOptions",
    "StateOptions",
    "StoryClusterer",
    "cluster_articles",
    "evaluate_labels",
    "evaluate_semeval",
    "__version__",
]
