"""The plain recipe storyclust is measured against: sentence-transformers fp32 + HDBSCAN.

The same default model (the converted multilingual-e5-small folder), max_seq_length 256,
prompt "query: ", batch 32, unit vectors, HDBSCAN(min_cluster_size=2) on them; one JSON line
per article ({"id", "story"}) on stdout. This is what a user would write without storyclust.

    python bench/plain_recipe.py articles.jsonl > labels.jsonl
"""
from __future__ import annotations

import json
import os
import sys


def main(path: str) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import hdbscan
    from sentence_transformers import SentenceTransformer

    from storyclust.embed import default_model_dir

    with open(path, encoding="utf-8") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    model = SentenceTransformer(str(default_model_dir()), device="cpu")
    model.max_seq_length = 256
    texts = [((r.get("title") or "") + "\n" + r["text"]).strip() for r in records]
    vectors = model.encode(texts, prompt="query: ", batch_size=32, normalize_embeddings=True)
    labels = hdbscan.HDBSCAN(min_cluster_size=2, metric="euclidean").fit_predict(vectors)
    for record, label in zip(records, labels):
        print(json.dumps({"id": record["id"], "story": int(label)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
