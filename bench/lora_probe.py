#!/usr/bin/env python
"""Feasibility probe (issue 13): LoRA on the encoder's own layers, merged into the weights.

The linear head on frozen vectors (``storyclust.tune``) raised Pearson but not cluster F1 under
5-fold CV. This probe adapts the encoder itself: low-rank ``A``, ``B`` on the attention
query/value (optionally key, attention output and feed-forward) ``Linear`` layers of the top
layers of multilingual-e5-small, everything else frozen, trained on the labelled SemEval dev pairs
of the training folds, then **merged** (``W <- W + (alpha / r) B A``) so that the model embeds as
fast as before. Scored as the adapter head was:

* vectors: the pipeline's recipe (``/tmp/v/recipe.txt`` if present, else ``full+lead:600``: the
  whole text up to 256 tokens and title + lead of 600 characters, unit vectors averaged, as
  ``storyclust.embed.embed_articles``; ``lead:600``: the lead only), ``query: `` prompt, SIF pooling
  (what ``load_embedder`` uses for this model), fp32 torch;
* reference language means from the shipped calibration corpus through the same model
  (``storyclust.tune.means_from_calibration``);
* ``storyclust.evaluate.cross_validate_semeval`` with a ``fit_space`` callable that trains the LoRA
  on the training pairs it is given (folds ``semeval_folds(pairs, 5, 0)``, every article clustered
  together), today's cluster options, and again with ``max_distance`` refitted on the training folds
  (a map may move the cosine's scale);
* the unadapted model through the very same code as the baseline; gains are fold-by-fold paired
  differences (``storyclust.evaluate.paired_gain``).

**Frozen bottom, cached.** LoRA goes only into layers ``--cache-layer``..11 (default 8..11, the top
four). The bottom layers are then the same for the base and every adapted model, so their output
(the hidden states entering layer 8, per text) is computed once, in the base model's pass, and
kept; training and the embedding of every adapted model run the top layers only. That is exactly
a forward pass of the merged model (``--stage smoke`` checks it against the pipeline's
``TorchEmbedder`` on the merged model: cosine 1.000000), at about a third of the cost.

Training: the pair cosine is taken in (an approximation of) the clusterer's language-neutral space,
``unit(unit(v) - m_lang)``, ``m_lang`` the base model's shrunk language means of the training view
(calibration corpus + every article, no labels); loss CoSENT on ``-Overall`` (``loss=cosent``) or
least squares against the straight line the base cosine draws through the ratings on the training
pairs (``loss=line``, keeps the threshold's scale); plus in-batch "different" pairs (articles of two
labelled pairs in different components of the training pair graph, rated 4). AdamW, warm-up over
the first tenth of an epoch then constant, so the model after epoch k is exactly a k-epoch run
(each epoch's checkpoint is scored). Seeded; bit-reproducible (smoke checks it).

Stages::

    python bench/lora_probe.py --stage smoke     # ~40 articles: pooling, merge, cache, reproducibility
    python bench/lora_probe.py --stage timing    # fp32 vs bf16 speed of inference and training steps
    python bench/lora_probe.py --stage onefold --setting loss=cosent,r=8,lr=5e-4,epochs=2 --setting ...
    python bench/lora_probe.py --stage cv --setting loss=cosent,r=8,lr=5e-4,epochs=2
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import pathlib
import resource
import sys
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

DEFAULT_CSV = "/work/shared/eval/semeval_dev.csv"
RECIPE_FILE = "/tmp/v/recipe.txt"
DEFAULT_RECIPE = "full+lead:600"
OUT_DIR = pathlib.Path("/tmp/lora_probe")
PROMPT = "query: "
TARGETS = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
           "o": "attention.output.dense", "i": "intermediate.dense", "d": "output.dense"}
#: Pre-registered go/no-go on one fold: both gains at least this (defaults, or both with max_distance refitted).
GO_MIN_GAIN = 0.01


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Setting:
    r: int = 8
    alpha: float = 16.0
    targets: str = "qv"  # letters of TARGETS
    layers: int = 4  # the top this-many layers get LoRA (at most 12 - cache layer)
    lr: float = 5e-4
    epochs: int = 2
    batch_pairs: int = 16
    loss: str = "cosent"  # cosent | line
    scale: float = 20.0  # CoSENT's inverse temperature
    negatives: int = 1  # in-batch "different" pairs per labelled pair (0: none)
    neg_weight: float = 0.5  # weight of a negative against a labelled pair ("line" loss)
    train_view: str = "lead"  # lead | full | recipe
    dropout: float = 0.0  # on the LoRA input
    seed: int = 0

    @classmethod
    def parse(cls, text: str) -> "Setting":
        kw = {}
        types = {f: type(getattr(cls(), f)) for f in cls.__dataclass_fields__}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, _, value = part.partition("=")
            if key not in types:
                raise SystemExit(f"unknown setting {key!r}; known: {', '.join(types)}")
            kw[key] = types[key](value)
        s = cls(**kw)
        if (set(s.targets) - set(TARGETS) or s.loss not in ("cosent", "line")
                or s.train_view not in ("lead", "full", "recipe")):
            raise SystemExit(f"bad setting {text!r}")
        return s

    def label(self) -> str:
        return (f"{self.loss} r{self.r} a{self.alpha:g} {self.targets}@top{self.layers} lr{self.lr:g} "
                f"ep{self.epochs} neg{self.negatives} {self.train_view}")

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


# --------------------------------------------------------------------------- recipe (what the pipeline embeds)


def read_recipe(explicit: str | None) -> str:
    if explicit:
        return explicit
    try:
        text = pathlib.Path(RECIPE_FILE).read_text(encoding="utf-8").strip()
        if text:
            return text
    except OSError:
        pass
    return DEFAULT_RECIPE


def recipe_views(recipe: str) -> list[tuple[str, int]]:
    """``full+lead:600`` -> [("full", 2000), ("lead", 600)]; ``lead:600`` -> [("lead", 600)]."""
    views = []
    for part in recipe.split("+"):
        name, _, chars = part.partition(":")
        if name not in ("full", "lead"):
            raise SystemExit(f"unknown recipe part {part!r} in {recipe!r} (full[:N], lead[:N])")
        views.append((name, int(chars) if chars else (2000 if name == "full" else 600)))
    return views


def calibration():
    from importlib import resources

    records = [json.loads(line) for line in
               resources.files("storyclust").joinpath("calibration.jsonl").read_text("utf-8").splitlines()
               if line.strip()]
    return [r["text"] for r in records], np.array([r["lang"] for r in records])


def _unit(X):
    X = np.asarray(X, dtype=np.float32)
    return X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)


class Texts:
    """Every text the probe embeds, by view: the recipe's views of each article, the lead view (training),
    the calibration corpus. ``slots[view][i]`` is the index of article i's text in ``unique`` (a later
    view whose text is not shorter than the first view's reuses the first view's text, as embed_articles)."""

    def __init__(self, articles, recipe: list[tuple[str, int]], calib_texts: list[str]) -> None:
        from storyclust.embed import embedding_text

        self.unique: list[str] = []
        index: dict[str, int] = {}

        def slot(text: str) -> int:
            if text not in index:
                index[text] = len(self.unique)
                self.unique.append(text)
            return index[text]

        self.recipe = recipe
        self.view_names = [f"{n}:{c}" for n, c in recipe]
        first = [embedding_text(a, max_chars=recipe[0][1]) for a in articles]
        self.slots: dict[str, list[int]] = {}
        self.separate: dict[str, np.ndarray] = {}  # rows where the view has its own (shorter) text
        for k, (name, chars) in enumerate(recipe):
            texts = first if k == 0 else [embedding_text(a, max_chars=chars) for a in articles]
            own = np.array([k == 0 or len(t) < len(f) for t, f in zip(texts, first)], dtype=bool)
            self.slots[self.view_names[k]] = [slot(t if o else f) for t, f, o in zip(texts, first, own)]
            self.separate[self.view_names[k]] = own
        for name, chars in (("lead", 600), ("full", 2000)):  # training views
            self.slots.setdefault(f"{name}:{chars}", [slot(embedding_text(a, max_chars=chars)) for a in articles])
        self.slots["calib"] = [slot(t) for t in calib_texts]

    def combine(self, V: np.ndarray) -> np.ndarray:
        """Article vectors from per-unique-text vectors ``V``: the recipe's views averaged (embed_articles)."""
        names = self.view_names
        acc = V[self.slots[names[0]]].astype(np.float64)
        for name in names[1:]:
            own = self.separate[name]
            acc[own] += V[np.array(self.slots[name])[own]]
        return _unit(acc)

    def calib(self, V: np.ndarray) -> np.ndarray:
        return V[self.slots["calib"]]


# --------------------------------------------------------------------------- model, pooling, LoRA


class Encoder:
    """The default model (sentence-transformers folder, fp32) with SIF pooling, split at ``cache_layer``:
    ``bottom`` (frozen, computed once per text and kept) and ``top`` (where LoRA goes)."""

    def __init__(self, max_tokens: int = 256, bf16: bool = False, threads: int | None = None,
                 cache_layer: int = 8) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        from storyclust.embed import default_model_dir
        from storyclust.embed._quiet import quiet_model_loading
        from storyclust.embed.pooling import mean_pooling_only, sif_weights, tokenizer_json_of, unigram_log_probs

        self.torch = torch
        torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
        self.folder = default_model_dir()
        with quiet_model_loading():
            self.model = SentenceTransformer(str(self.folder), device="cpu")
        self.model.max_seq_length = max_tokens
        self.max_tokens = max_tokens
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if not mean_pooling_only(self.model):
            raise SystemExit("expected a mean-pooling model (SIF pooling)")
        self.sif = sif_weights(unigram_log_probs(tokenizer_json_of(self.model)))
        self.sif_t = torch.from_numpy(self.sif)
        self.bf16 = bf16
        self.bert = self.model[0].auto_model
        self.n_layers = len(self.bert.encoder.layer)
        self.cache_layer = cache_layer
        self._orig = {name: (mod.weight.detach().clone(), mod.bias.detach().clone())
                      for name, mod in self._linears(range(self.n_layers), "qkvoid")}
        self.lora: dict[str, object] = {}

    def _linears(self, layers, letters: str):
        for layer_no in layers:
            layer = self.bert.encoder.layer[layer_no]
            for letter in letters:
                yield f"{layer_no}.{TARGETS[letter]}", layer.get_submodule(TARGETS[letter])

    def autocast(self):
        return self.torch.autocast("cpu", dtype=self.torch.bfloat16) if self.bf16 else contextlib.nullcontext()

    # --- the pipeline's own class, for checks
    def pipeline_encode(self, texts) -> np.ndarray:
        from storyclust.embed.backends import TorchEmbedder

        return TorchEmbedder(self.model, model_id="lora-probe", prompt=PROMPT, batch_size=32, bf16=self.bf16,
                             token_weights=self.sif).encode(texts)

    # --- split forward
    def tokenize(self, texts):
        return self.model.preprocess([PROMPT + t for t in texts])

    def _mask(self, attention_mask, embeds):
        return self.bert._create_attention_masks(attention_mask=attention_mask, encoder_attention_mask=None,
                                                 embedding_output=embeds, encoder_hidden_states=None, cache=None)[0]

    def bottom(self, features):
        kw = {"input_ids": features["input_ids"]}
        if "token_type_ids" in features:
            kw["token_type_ids"] = features["token_type_ids"]
        with self.autocast():
            h = self.bert.embeddings(**kw)
            mask = self._mask(features["attention_mask"], h)
            for layer in self.bert.encoder.layer[: self.cache_layer]:
                h = layer(h, mask)
        return h.float()

    def top(self, h, attention_mask):
        with self.autocast():
            mask = self._mask(attention_mask, h)
            for layer in self.bert.encoder.layer[self.cache_layer:]:
                h = layer(h, mask)
        return h.float()

    def pool(self, tokens, input_ids, attention_mask):
        w = self.sif_t[input_ids.clamp(0, len(self.sif_t) - 1)] * (attention_mask > 0)
        pooled = (tokens * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True).clamp_min(1e-30)
        return self.torch.nn.functional.normalize(pooled, dim=1)

    def base_pass(self, texts: list[str], batch_size: int = 32):
        """Full forward of ``texts`` (length-sorted batches, as the pipeline): (unit vectors, per-text cache
        of (hidden states entering ``cache_layer``, input ids), trimmed to each text's length)."""
        torch = self.torch
        out = np.zeros((len(texts), self.bert.config.hidden_size), np.float32)
        cache: list = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                f = self.tokenize([texts[i] for i in idx])
                h = self.bottom(f)
                out[idx] = self.pool(self.top(h, f["attention_mask"]), f["input_ids"], f["attention_mask"]).numpy()
                lengths = f["attention_mask"].sum(1).tolist()
                for row, i in enumerate(idx):
                    n = int(lengths[row])
                    cache[i] = (h[row, :n].clone(), f["input_ids"][row, :n].clone())
        return out, cache

    def pad(self, entries):
        torch = self.torch
        n = max(len(e[1]) for e in entries)
        d = entries[0][0].shape[1]
        h = torch.zeros(len(entries), n, d)
        ids = torch.ones(len(entries), n, dtype=torch.long)  # pad id 1; weight 0 through the mask
        am = torch.zeros(len(entries), n, dtype=torch.long)
        for row, (hh, ii) in enumerate(entries):
            h[row, : len(ii)] = hh
            ids[row, : len(ii)] = ii
            am[row, : len(ii)] = 1
        return h, ids, am

    def vectors(self, entries):
        """Differentiable unit vectors of cached texts through the (possibly adapted) top layers."""
        h, ids, am = self.pad(entries)
        return self.pool(self.top(h, am), ids, am)

    def encode_cached(self, cache, batch_size: int = 32) -> np.ndarray:
        torch = self.torch
        out = np.zeros((len(cache), self.bert.config.hidden_size), np.float32)
        order = sorted(range(len(cache)), key=lambda i: -len(cache[i][1]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                out[idx] = self.vectors([cache[i] for i in idx]).numpy()
        return _unit(out)

    # --- LoRA
    def add_lora(self, s: Setting) -> list:
        torch = self.torch
        self.restore()
        first = self.n_layers - s.layers
        if first < self.cache_layer:
            raise SystemExit(f"LoRA in the top {s.layers} layers needs --cache-layer <= {first}")
        gen = torch.Generator().manual_seed(s.seed)
        cls = _lora_class()
        params = []
        for name, base in self._linears(range(first, self.n_layers), s.targets):
            wrapped = cls(base, s.r, s.alpha, s.dropout, gen)
            self._set(name, wrapped)
            self.lora[name] = wrapped
            params += [wrapped.A, wrapped.B]
        return params

    def _set(self, name: str, module) -> None:
        layer_no, path = name.split(".", 1)
        parent_path, _, child = path.rpartition(".")
        setattr(self.bert.encoder.layer[int(layer_no)].get_submodule(parent_path), child, module)

    @contextlib.contextmanager
    def merged(self):
        """The merged model: W <- W + scale * B @ A in every adapted Linear, plain Linears back in place;
        on exit the LoRA wrappers (and the unmerged W) come back, so training can go on."""
        torch = self.torch
        with torch.no_grad():
            for name, w in self.lora.items():
                w.base.weight += w.scale * (w.B @ w.A)
                self._set(name, w.base)
        try:
            yield self.delta_norm()
        finally:
            with torch.no_grad():
                for name, w in self.lora.items():
                    w.base.weight.copy_(self._orig[name][0])
                    self._set(name, w)

    def restore(self) -> None:
        """Back to the unadapted model (unwrap, original weights)."""
        torch = self.torch
        for name, w in self.lora.items():
            self._set(name, w.base)
        self.lora = {}
        with torch.no_grad():
            for name, mod in self._linears(range(self.n_layers), "qkvoid"):
                mod.weight.copy_(self._orig[name][0])
                mod.bias.copy_(self._orig[name][1])

    def delta_norm(self) -> float:
        total = 0.0
        for name, mod in self._linears(range(self.n_layers), "qkvoid"):
            total += float((mod.weight - self._orig[name][0]).norm()) ** 2
        return total ** 0.5


_LORA = None


def _lora_class():
    global _LORA
    if _LORA is not None:
        return _LORA
    import torch

    class LoRALinear(torch.nn.Module):
        """``base(x) + scale * x A^T B^T``; A uniform(+-1/sqrt(in)) (as LoRA/peft's Kaiming), B = 0."""

        def __init__(self, base, r, alpha, dropout, gen):
            super().__init__()
            self.base = base
            self.scale = alpha / r
            bound = 1.0 / math.sqrt(base.in_features)
            self.A = torch.nn.Parameter((torch.rand(r, base.in_features, generator=gen) * 2 - 1) * bound)
            self.B = torch.nn.Parameter(torch.zeros(base.out_features, r))
            self.drop = torch.nn.Dropout(dropout) if dropout > 0 else torch.nn.Identity()

        def forward(self, x):
            return self.base(x) + (self.drop(x) @ self.A.t() @ self.B.t()) * self.scale

    _LORA = LoRALinear
    return _LORA


# --------------------------------------------------------------------------- training


def components(pairs) -> dict[str, int]:
    parent: dict[str, str] = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(pairs["id1"], pairs["id2"]):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: hash(find(x)) for x in list(parent)}


def cosent_loss(torch, cos, y, scale):
    """CoSENT: log(1 + sum over pairs (i, j) with y_i > y_j of exp(scale (cos_j - cos_i)))."""
    diff = scale * (cos[None, :] - cos[:, None])  # [i, j] = scale (cos_j - cos_i)
    d = diff[y[:, None] > y[None, :]]
    return torch.logsumexp(torch.cat([torch.zeros(1, dtype=d.dtype), d]), dim=0)


def train_lora(enc: Encoder, s: Setting, articles, train_pairs, entry_of, means: dict, line=None,
               on_epoch=None) -> dict:
    """Train LoRA on ``train_pairs`` (in place on ``enc``). ``entry_of(article_index)`` gives the cached
    bottom-layer entries of the training view (one, or two to average). ``on_epoch(k)`` runs after epoch k."""
    torch = enc.torch
    torch.manual_seed(s.seed)
    rng = np.random.default_rng(s.seed)
    params = enc.add_lora(s)
    n_params = int(sum(p.numel() for p in params))
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=0.0)
    row = {a.id: i for i, a in enumerate(articles)}
    lang = [a.lang for a in articles]
    mu = {k: torch.from_numpy(v) for k, v in means.items()}
    comp = components(train_pairs)
    id1, id2 = train_pairs["id1"].tolist(), train_pairs["id2"].tolist()
    rating = train_pairs["overall"].to_numpy(dtype=np.float32)
    m = len(id1)
    warm = max(1, math.ceil(m / s.batch_pairs) // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / warm))
    stats = {"epoch_s": [], "loss": [], "params": n_params, "train_pairs": m, "texts_per_epoch": 0}
    for epoch in range(s.epochs):
        t0 = time.perf_counter()
        order = rng.permutation(m)
        ep_loss, n_texts = [], 0
        for start in range(0, m, s.batch_pairs):
            idx = order[start:start + s.batch_pairs]
            arts = sorted({row[id1[k]] for k in idx} | {row[id2[k]] for k in idx})
            pos = {a: p for p, a in enumerate(arts)}
            groups = [entry_of(a) for a in arts]
            flat = [e for g in groups for e in g]
            n_texts += len(flat)
            V = enc.vectors(flat)
            if len(flat) > len(arts):  # two views per article where the second is separate: average
                owner = torch.tensor([p for p, g in enumerate(groups) for _ in g])
                V = torch.zeros(len(arts), V.shape[1]).index_add(0, owner, V)
                V = torch.nn.functional.normalize(V, dim=1)
            Z = torch.nn.functional.normalize(V - torch.stack([mu[lang[a]] for a in arts]), dim=1)
            i = [pos[row[id1[k]]] for k in idx]
            j = [pos[row[id2[k]]] for k in idx]
            y, w = list(rating[idx]), [1.0] * len(i)
            if s.negatives and len(idx) > 1:
                cands = [(p, q) for p in range(len(arts)) for q in range(p + 1, len(arts))
                         if comp[articles[arts[p]].id] != comp[articles[arts[q]].id]]
                for c in rng.permutation(len(cands))[: s.negatives * len(idx)]:
                    i.append(cands[c][0])
                    j.append(cands[c][1])
                    y.append(4.0)
                    w.append(s.neg_weight)
            cos = (Z[i] * Z[j]).sum(1)
            yt = torch.tensor(y, dtype=torch.float32)
            if s.loss == "cosent":
                loss = cosent_loss(torch, cos, -yt, s.scale)
            else:
                wt = torch.tensor(w)
                loss = (wt * (cos - (line[1] + line[0] * yt)) ** 2).sum() / wt.sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            ep_loss.append(float(loss.detach()))
        stats["epoch_s"].append(time.perf_counter() - t0)
        stats["loss"].append(float(np.mean(ep_loss)))
        stats["texts_per_epoch"] = n_texts
        log(f"  epoch {epoch + 1}/{s.epochs}: loss {stats['loss'][-1]:.4f}, {stats['epoch_s'][-1]:.0f} s "
            f"({n_texts} texts), peak RSS {peak_rss_mib():.0f} MiB")
        if on_epoch is not None:
            on_epoch(epoch + 1, stats)
    return stats


# --------------------------------------------------------------------------- the probe


def load_data(csv: str, limit_pairs: int = 0):
    from storyclust.evaluate import SemEvalData, load_semeval, semeval_folds

    data = load_semeval(csv)
    folds = semeval_folds(data.pairs, 5, 0)
    if limit_pairs:
        keep = np.zeros(len(data.pairs), bool)
        for f in range(5):
            keep[np.flatnonzero(folds == f)[: max(1, limit_pairs // 5)]] = True
        pairs = data.pairs[keep].reset_index(drop=True)
        ids = set(pairs["id1"]) | set(pairs["id2"])
        data = SemEvalData([a for a in data.articles if a.id in ids], pairs)
        folds = folds[keep]
    return data, folds


def clusterer_means(articles, vectors: np.ndarray, calib_means) -> dict[str, np.ndarray]:
    """The shrunk per-language means the clusterer subtracts for these articles (rows ``vectors``)."""
    from storyclust.cluster import StoryClusterer

    c = StoryClusterer(None, language_means=calib_means)
    langs = [a.lang for a in articles]
    c.update_language_means(vectors, langs)
    return {lang: c.language_mean(lang).astype(np.float32) for lang in set(langs)}


class Probe:
    def __init__(self, args) -> None:
        from storyclust.tune import means_from_calibration

        self.args = args
        self.mfc = means_from_calibration
        self.recipe_name = read_recipe(args.recipe)
        self.recipe = recipe_views(self.recipe_name)
        self.data, self.folds = load_data(args.csv, args.limit_pairs)
        self.articles = self.data.articles
        t0 = time.perf_counter()
        self.enc = Encoder(max_tokens=args.max_tokens, bf16=args.bf16, threads=args.threads,
                           cache_layer=args.cache_layer)
        self.load_s = time.perf_counter() - t0
        calib_texts, self.calib_langs = calibration()
        self.texts = Texts(self.articles, self.recipe, calib_texts)
        self.tag = hashlib.sha1(json.dumps([self.recipe_name, args.bf16, args.max_tokens, args.csv, args.limit_pairs,
                                            args.cache_layer, len(self.articles)]).encode()).hexdigest()[:12]
        # onefold scores every epoch's checkpoint (unless --final-only); cv the last only
        self.every_epoch = args.stage != "cv" and not args.final_only
        self.spaces: dict[str, tuple] = {}
        self.records: dict[str, dict] = {}
        self._base_pass()

    def _base_pass(self) -> None:
        torch = self.enc.torch
        path = OUT_DIR / f"base_{self.tag}.pt"
        if path.is_file():
            saved = torch.load(path, weights_only=True)
            self.base_V, self.cache, self.base_s = saved["V"].numpy(), saved["cache"], float(saved["seconds"])
            log(f"base pass (vectors + layer-{self.args.cache_layer} states) from {path}")
        else:
            log(f"base pass: {len(self.texts.unique)} texts (recipe {self.recipe_name}, training views, calibration)")
            t0 = time.perf_counter()
            self.base_V, self.cache = self.enc.base_pass(self.texts.unique)
            self.base_s = time.perf_counter() - t0
            log(f"  {self.base_s:.0f} s, peak RSS {peak_rss_mib():.0f} MiB")
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            torch.save({"V": torch.from_numpy(self.base_V), "cache": self.cache, "seconds": self.base_s}, path)

    def space_of(self, V: np.ndarray):
        return self.texts.combine(V), self.mfc(self.texts.calib(V), self.calib_langs)

    def train_view_slots(self, s: Setting) -> list[list[int]]:
        if s.train_view == "recipe":
            names = self.texts.view_names
            return [[self.texts.slots[names[0]][i]] + [self.texts.slots[n][i] for n in names[1:]
                                                       if self.texts.separate[n][i]]
                    for i in range(len(self.articles))]
        name = "lead:600" if s.train_view == "lead" else "full:2000"
        return [[k] for k in self.texts.slots[name]]

    def train_means(self, s: Setting) -> dict[str, np.ndarray]:
        """Base-model language means of the training view (calibration corpus + every article, no labels)."""
        slots = self.train_view_slots(s)
        V = _unit(np.stack([self.base_V[g].sum(0) for g in slots]))
        return clusterer_means(self.articles, V, self.mfc(self.texts.calib(self.base_V), self.calib_langs)), V

    def fit_space_factory(self, s: Setting, only_fold: int | None = None):
        """A ``fit_space`` for ``cross_validate_semeval``: trains the LoRA on the training pairs, merges it,
        embeds everything through the merged model. With ``only_fold``, other folds get the base space."""
        pairs = self.data.pairs.reset_index(drop=True)

        def held_out(train_pairs) -> int:
            train_ids = set(train_pairs["pair_id"])
            out = {int(self.folds[k]) for k, pid in enumerate(pairs["pair_id"]) if pid not in train_ids}
            return out.pop() if len(out) == 1 else -1

        def fit_space(train_pairs):
            f = held_out(train_pairs)
            if only_fold is not None and f != only_fold:
                return self.space_of(self.base_V)
            key = f"{s.key()}|fold{f}"
            if key not in self.spaces:
                self._train(s, f, train_pairs)
            return self.spaces[key]

        return fit_space

    def _disk(self, s: Setting, f: int) -> pathlib.Path:
        return OUT_DIR / f"lora_{self.tag}_{hashlib.sha1(f'{s.key()}|fold{f}'.encode()).hexdigest()[:16]}.npz"

    def _train(self, s: Setting, f: int, train_pairs) -> None:
        disk = self._disk(s, f)
        if disk.is_file():  # trained by an earlier run (e.g. an epoch checkpoint of --stage onefold)
            z = np.load(disk)
            self.spaces[f"{s.key()}|fold{f}"] = self.space_of(z["V"])
            self.records[f"{s.key()}|fold{f}"] = json.loads(str(z["record"]))
            log(f"fold {f}: {s.label()} from {disk}")
            return
        log(f"fold {f}: training LoRA {s.label()} on {len(train_pairs)} pairs")
        means, Vt = self.train_means(s)
        line = None
        if s.loss == "line":
            row = {a.id: i for i, a in enumerate(self.articles)}
            Z = _unit(Vt - np.stack([means[a.lang] for a in self.articles]))
            i = np.array([row[x] for x in train_pairs["id1"]])
            j = np.array([row[x] for x in train_pairs["id2"]])
            slope, intercept = np.polyfit(train_pairs["overall"].to_numpy(float), np.einsum("ij,ij->i", Z[i], Z[j]), 1)
            line = (float(slope), float(intercept))
        slots = self.train_view_slots(s)

        def on_epoch(k: int, stats: dict) -> None:
            if k < s.epochs and not self.every_epoch:
                return
            sk = replace(s, epochs=k)
            with self.enc.merged() as delta:
                t0 = time.perf_counter()
                V = self.enc.encode_cached(self.cache)
                embed_s = time.perf_counter() - t0
            rec = {"fold": f, "setting": asdict(sk), "epoch_s": stats["epoch_s"][:k], "loss": stats["loss"][:k],
                   "params": stats["params"], "train_pairs": stats["train_pairs"],
                   "texts_per_epoch": stats["texts_per_epoch"], "delta_norm": delta, "embed_s": embed_s,
                   "line": line}
            log(f"  epoch {k}: merged (|dW| {delta:.3f}), embedded {len(V)} texts through the top layers in "
                f"{embed_s:.0f} s, peak RSS {peak_rss_mib():.0f} MiB")
            self.spaces[f"{sk.key()}|fold{f}"] = self.space_of(V)
            self.records[f"{sk.key()}|fold{f}"] = rec
            OUT_DIR.mkdir(parents=True, exist_ok=True)
            np.savez(self._disk(sk, f), V=V, record=json.dumps(rec))

        train_lora(self.enc, s, self.articles, train_pairs, lambda a: [self.cache[k] for k in slots[a]], means,
                   line, on_epoch)
        self.enc.restore()

    def score(self, s: Setting | None, only_fold: int | None = None, refit: bool = False):
        from storyclust.evaluate import cross_validate_semeval

        grid = {"max_distance": [0.46, 0.48, 0.50, 0.52, 0.54]} if refit else None
        if s is None:
            E, M = self.space_of(self.base_V)
            return cross_validate_semeval(self.data, E, language_means=M, k=5, random_state=0, grid=grid,
                                          folds=self.folds)
        return cross_validate_semeval(self.data, self.fit_space_factory(s, only_fold), k=5, random_state=0,
                                      grid=grid, folds=self.folds)


# --------------------------------------------------------------------------- reporting


METRICS = ("f1", "xl_f1", "pearson")


def fmt_fold(fig) -> str:
    return " ".join(f"{m} {fig[m]:.3f}" for m in METRICS)


def summary_cells(res) -> str:
    s = res["summary"]
    return "".join(f"{s[m]['mean']:>8.3f} ± {s[m]['sd']:.3f}" for m in METRICS)


def gain_cells(a, b) -> str:
    from storyclust.evaluate import paired_gain

    return "".join(f"{paired_gain(a['folds'], b['folds'], m)['mean']:>+9.4f} (SE {paired_gain(a['folds'], b['folds'], m)['se']:.4f})"
                   for m in METRICS)


def header(probe: Probe) -> None:
    a = probe.args
    print(f"# CPU: {cpu_model()}, {len(os.sched_getaffinity(0))} cores, torch threads "
          f"{probe.enc.torch.get_num_threads()}; load average at start {os.getloadavg()[0]:.2f}")
    print(f"# data: {a.csv}: {len(probe.articles)} articles, {len(probe.data.pairs)} pairs; folds "
          f"semeval_folds(pairs, 5, 0): {np.bincount(probe.folds).tolist()} pairs")
    print(f"# recipe {probe.recipe_name}, query: prompt, SIF pooling, max_tokens {a.max_tokens}, "
          f"{'bf16 autocast' if a.bf16 else 'fp32'}; model load {probe.load_s:.1f} s; base pass "
          f"({len(probe.texts.unique)} texts, full model) {probe.base_s:.0f} s; LoRA only in layers "
          f">= {a.cache_layer} (bottom cached)")


def run_onefold(probe: Probe, settings: list[Setting], fold: int) -> dict:
    header(probe)
    base, base_r = probe.score(None)["folds"][fold], probe.score(None, refit=True)["folds"][fold]
    print(f"# one fold: train on the other 4 folds, score fold {fold} (every article clustered together)")
    print(f"{'':<52}{'default thresholds':<40}| max_distance refitted on the 4 training folds")
    print(f"{'base (no LoRA)':<52}{fmt_fold(base):<40}| {fmt_fold(base_r)} (md {base_r['params']['max_distance']})")
    out = {"fold": fold, "base": base, "base_refit": base_r, "results": []}
    go = []
    for s in settings:
        probe.score(s, only_fold=fold)  # trains once, scoring/caching every epoch's checkpoint
        for k in range(1, s.epochs + 1):
            sk = replace(s, epochs=k)
            if f"{sk.key()}|fold{fold}" not in probe.spaces and not probe._disk(sk, fold).is_file():
                continue  # --final-only: this checkpoint was not scored
            f = probe.score(sk, only_fold=fold)["folds"][fold]
            fr = probe.score(sk, only_fold=fold, refit=True)["folds"][fold]
            rec = probe.records[f"{sk.key()}|fold{fold}"]
            gain = {m: f[m] - base[m] for m in METRICS}
            gain_r = {m: fr[m] - base_r[m] for m in METRICS}
            print(f"{'LoRA ' + sk.label():<52}{fmt_fold(f):<40}| {fmt_fold(fr)} (md {fr['params']['max_distance']})")
            print(f"{'  gain over base':<52}{' '.join(f'{m} {gain[m]:+.3f}' for m in METRICS):<40}| "
                  + " ".join(f"{m} {gain_r[m]:+.3f}" for m in METRICS))
            print(f"{'  cost':<52}train {', '.join(f'{x:.0f}' for x in rec['epoch_s'])} s/epoch "
                  f"({rec['texts_per_epoch']} texts/epoch, {rec['params']} LoRA params), embed {rec['embed_s']:.0f} s, "
                  f"|dW| {rec['delta_norm']:.3f}, loss {[round(x, 4) for x in rec['loss']]}")
            sys.stdout.flush()
            ok = min(gain["f1"], gain["xl_f1"]) >= GO_MIN_GAIN or min(gain_r["f1"], gain_r["xl_f1"]) >= GO_MIN_GAIN
            go.append((ok, max(min(gain["f1"], gain["xl_f1"]), min(gain_r["f1"], gain_r["xl_f1"])), sk))
            out["results"].append({"setting": asdict(sk), "fold": f, "fold_refit": fr, "gain": gain,
                                   "gain_refit": gain_r, "record": rec, "go": ok})
    best = max(go, key=lambda g: g[1])
    verdict = "GO" if best[0] else "NO-GO"
    print(f"# go/no-go (pre-registered: F1 and cross-lingual F1 gains both >= +{GO_MIN_GAIN} on fold {fold}, "
          f"at today's thresholds or both with max_distance refitted): {verdict}; best {best[2].label()} "
          f"(min gain {best[1]:+.3f})")
    print(f"# peak RSS {peak_rss_mib():.0f} MiB")
    out["verdict"], out["best"] = verdict, asdict(best[2])
    return out


def run_cv(probe: Probe, s: Setting) -> dict:
    header(probe)
    base, base_r = probe.score(None), probe.score(None, refit=True)
    lora, lora_r = probe.score(s), probe.score(s, refit=True)
    print(f"# 5-fold CV, mean ± sd over folds{'':<20}{'F1 all':>16}{'F1 xl':>16}{'Pearson':>16}")
    print(f"{'base, default thresholds':<52}{summary_cells(base)}")
    print(f"{'LoRA ' + s.label() + ', default thresholds':<52}{summary_cells(lora)}")
    print(f"{'base, max_distance refitted':<52}{summary_cells(base_r)}")
    print(f"{'LoRA, max_distance refitted':<52}{summary_cells(lora_r)}")
    print("# paired gains LoRA - base over the 5 folds: mean (SE)")
    print(f"{'default thresholds':<52}{gain_cells(lora, base)}")
    print(f"{'max_distance refitted':<52}{gain_cells(lora_r, base_r)}")
    for f in range(5):
        print(f"  fold {f}: base {fmt_fold(base['folds'][f])} | LoRA {fmt_fold(lora['folds'][f])} "
              f"| refitted md: base {base_r['folds'][f]['params']['max_distance']}, "
              f"LoRA {lora_r['folds'][f]['params']['max_distance']}")
    recs = [probe.records[f"{s.key()}|fold{f}"] for f in range(5)]
    ep = [x for r in recs for x in r["epoch_s"]]
    print(f"# training {np.mean(ep):.0f} s/epoch (mean of {len(ep)}), embedding through the top layers "
          f"{np.mean([r['embed_s'] for r in recs]):.0f} s per fold; peak RSS {peak_rss_mib():.0f} MiB")
    return {"base": base, "base_refit": base_r, "lora": lora, "lora_refit": lora_r, "records": recs,
            "setting": asdict(s)}


def run_smoke(args) -> None:
    """Tiny: split forward == TorchEmbedder; merged == unmerged; cached top pass of the merged model ==
    the pipeline's TorchEmbedder on the merged model; seeded training reproducible; restore exact."""
    import torch

    args.limit_pairs = args.limit_pairs or 20
    global OUT_DIR
    OUT_DIR = OUT_DIR / "smoke"
    probe = Probe(args)
    enc = probe.enc
    texts = probe.texts.unique[:8]
    ref = enc.pipeline_encode(texts)
    print(f"base pass vs pipeline TorchEmbedder: min cosine {np.einsum('ij,ij->i', ref, probe.base_V[:8]).min():.6f}")
    s = Setting.parse(args.setting[0] if args.setting else "r=4,epochs=1,batch_pairs=4")
    pairs = probe.data.pairs[probe.folds != 0].reset_index(drop=True)
    means, _ = probe.train_means(s)
    slots = probe.train_view_slots(s)
    runs = []
    for rep in range(2):
        train_lora(enc, s, probe.articles, pairs, lambda a: [probe.cache[k] for k in slots[a]], means)
        with torch.no_grad():  # a visible change for the merge check
            for w in enc.lora.values():
                w.B += 0.02 * torch.randn(w.B.shape, generator=torch.Generator().manual_seed(1))
            unmerged = enc.vectors([probe.cache[k] for k in range(8)]).numpy()
        runs.append(unmerged)
        with enc.merged() as delta:
            cached = enc.encode_cached(probe.cache[:8])
            full = enc.pipeline_encode(texts)
        print(f"run {rep}: |dW| {delta:.3f}; merged cached-top vs unmerged min cosine "
              f"{np.einsum('ij,ij->i', cached, unmerged).min():.6f}; vs pipeline TorchEmbedder on the merged "
              f"model {np.einsum('ij,ij->i', cached, full).min():.6f}; mean cosine to base "
              f"{np.einsum('ij,ij->i', full, ref).mean():.4f}")
        enc.restore()
    print(f"reproducible: max |diff| between two seeded runs {np.abs(runs[0] - runs[1]).max():.2e}")
    print(f"restored: min cosine to base {np.einsum('ij,ij->i', enc.pipeline_encode(texts), ref).min():.6f}")
    res = probe.score(replace(s, epochs=1), only_fold=0)
    print("one fold through cross_validate_semeval on the tiny subset:", fmt_fold(res["folds"][0]))
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


def run_timing(args) -> None:
    """fp32 vs bf16 (torch.autocast): inference texts/s (lead and whole-text view) and LoRA training
    steps texts/s (lead view, every layer trained, no cache), on ``--timing-texts`` SemEval texts."""
    import torch

    from storyclust.embed import embedding_text
    from storyclust.evaluate import load_semeval

    arts = load_semeval(args.csv).articles[::97][: args.timing_texts]
    print(f"# CPU: {cpu_model()}; {len(arts)} texts; load average {os.getloadavg()[0]:.2f}")
    for bf16 in (False, True):
        enc = Encoder(max_tokens=args.max_tokens, bf16=bf16, threads=args.threads, cache_layer=0)
        name = "bf16" if bf16 else "fp32"
        for view, chars in (("lead", 600), ("full", 2000)):
            texts = [embedding_text(a, max_chars=chars) for a in arts]
            enc.pipeline_encode(texts[:4])
            t0 = time.perf_counter()
            enc.pipeline_encode(texts)
            print(f"{name} inference {view:<5} {len(texts) / (time.perf_counter() - t0):6.1f} texts/s")
        params = enc.add_lora(Setting(r=8, layers=12))
        opt = torch.optim.AdamW(params, lr=1e-4)
        texts = [embedding_text(a, max_chars=600) for a in arts]
        t0 = time.perf_counter()
        for start in range(0, len(texts), 16):
            f = enc.tokenize(texts[start:start + 16])
            v = enc.pool(enc.top(enc.bottom(f), f["attention_mask"]), f["input_ids"], f["attention_mask"])
            loss = (v[::2] * v[1::2]).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"{name} LoRA train step, lead, all 12 layers: {len(texts) / (time.perf_counter() - t0):6.1f} texts/s")
        enc.restore()
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--stage", choices=("smoke", "timing", "onefold", "cv"), default="smoke")
    p.add_argument("--csv", default=DEFAULT_CSV)
    p.add_argument("--setting", action="append", default=[],
                   help="comma-separated Setting fields, e.g. loss=cosent,r=8,alpha=16,targets=qv,layers=4,lr=5e-4,"
                        "epochs=2 (repeatable; onefold scores every epoch's checkpoint)")
    p.add_argument("--recipe", default=None, help=f"default: {RECIPE_FILE} if present, else {DEFAULT_RECIPE}")
    p.add_argument("--bf16", action="store_true", help="torch.autocast(bfloat16) for training and embedding")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--cache-layer", type=int, default=8, help="layers below this are frozen and cached")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--fold", type=int, default=0, help="held-out fold of --stage onefold")
    p.add_argument("--final-only", action="store_true", help="onefold: score only the last epoch of new trainings")
    p.add_argument("--limit-pairs", type=int, default=0, help="use only about this many pairs (debugging)")
    p.add_argument("--timing-texts", type=int, default=24)
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    if args.stage == "smoke":
        run_smoke(args)
        return 0
    if args.stage == "timing":
        run_timing(args)
        return 0
    probe = Probe(args)
    settings = [Setting.parse(x) for x in args.setting] or [Setting()]
    out = run_onefold(probe, settings, args.fold) if args.stage == "onefold" else run_cv(probe, settings[0])
    out.update({"cpu": cpu_model(), "recipe": probe.recipe_name, "bf16": args.bf16, "max_tokens": args.max_tokens,
                "cache_layer": args.cache_layer, "base_pass_s": probe.base_s, "wall_s": time.perf_counter() - t0,
                "peak_rss_mib": peak_rss_mib(), "argv": sys.argv[1:]})
    print(f"# wall {out['wall_s']:.0f} s, CPU {resource.getrusage(resource.RUSAGE_SELF).ru_utime:.0f} s user")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(out, indent=1, default=float) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
