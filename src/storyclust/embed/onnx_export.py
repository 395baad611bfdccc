"""Export a sentence-transformers model to ONNX, and quantize it to int8.

Export (needs torch; done once per model, then cached):

1. load the model with eager attention (the pattern ONNX Runtime's transformer
   optimizer recognises), wrap the whole sentence-transformers pipeline (transformer,
   pooling, dense layers, normalisation) so the graph maps ``input_ids`` +
   ``attention_mask`` straight to ``sentence_embedding``;
2. ``torch.onnx.export`` (TorchScript exporter, dynamic batch and sequence axes);
3. for BERT-like models, ``onnxruntime.transformers.optimizer`` fuses attention,
   embedding + LayerNorm, skip + LayerNorm and bias + GELU (fp32: 6.6 vs 4.6-4.8
   articles/s in back-to-back runs on 2 busy cores; unfused, attention is dozens of small ops);
4. the export is checked against the torch model on texts of different lengths before it
   is accepted.

The folder holds ``model.onnx``, ``tokenizer.json`` (the fast tokenizer) and
``storyclust-onnx.json`` (dimension, pad token, maximum length, source), so that running it
needs only ``onnxruntime``, ``tokenizers`` and numpy.

Quantization: ``quantize_dynamic`` with int8 weights, per output channel, on the MatMul and
fused Attention nodes. The word-embedding table stays fp32: quantizing it too shrinks the
file from 406 MB to 118 MB but lowered the worst-case cosine to fp32 from 0.994 to 0.989
on 200 news texts, and memory is not scarce. Per-channel lifted the mean cosine to fp32 from
0.986 (per-tensor) to 0.997 at about the same speed.
"""
from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ._quiet import quiet_model_loading
from .pooling import mean_pooling_only

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "storyclust-onnx.json"

#: transformers ``model_type`` values the ORT "bert" optimizer handles.
_BERT_LIKE = frozenset({"bert", "xlm-roberta", "roberta", "camembert", "electra"})
#: Texts used to trace the graph and to check the export (different lengths on purpose).
_CHECK_TEXTS = (
    "query: Le parlement a adopté la loi de finances après une longue nuit de débats.",
    "query: Banjir",
    "query: Storm Ciarán brought winds of over 100 mph to the coast of Brittany on Thursday, "
    "cutting power to more than a million homes and killing at least two people.",
)
_MIN_CHECK_COSINE = 0.999


@contextlib.contextmanager
def _quiet_onnxruntime_logs() -> Iterator[None]:
    """Silence WARNING and below while ONNX Runtime's optimizer and quantizer run.

    Both log every fused node and every tensor (hundreds of lines, partly on the root
    logger) and warn about pre-processing we deliberately skip; failures still raise, and
    our own INFO line says what is being built.
    """
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _load_sentence_transformer(folder: Path) -> Any:
    """Load ``folder`` on the CPU, with eager attention when the model supports it."""
    from sentence_transformers import SentenceTransformer

    with quiet_model_loading():
        try:
            return SentenceTransformer(str(folder), device="cpu", model_kwargs={"attn_implementation": "eager"})
        except (ValueError, TypeError) as err:  # architectures without an eager switch
            logger.info("eager attention unavailable (%s); exporting the default attention", err)
            return SentenceTransformer(str(folder), device="cpu")


def _wrapper(model: Any) -> Any:
    """A ``torch.nn.Module`` mapping (input_ids, attention_mask) to the sentence embeddings of the
    model's own pooling and the token vectors they were pooled from (for SIF pooling)."""
    import torch

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            features = {"input_ids": input_ids, "attention_mask": attention_mask}
            out = self.model(features)
            return out["sentence_embedding"], out["token_embeddings"]

    return SentenceEmbedding().eval()


def _tokenize(tokenizer: Any, texts: tuple[str, ...] | list[str]) -> dict[str, np.ndarray]:
    encodings = tokenizer.encode_batch(list(texts))
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
    }


def _export_graph(model: Any, inputs: dict[str, np.ndarray], path: Path) -> None:
    import torch

    args = (torch.from_numpy(inputs["input_ids"]), torch.from_numpy(inputs["attention_mask"]))
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter
        torch.onnx.export(
            _wrapper(model),
            args,
            str(path),
            dynamo=False,
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding", "token_embeddings"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "sentence_embedding": {0: "batch"},
                "token_embeddings": {0: "batch", 1: "sequence"},
            },
            opset_version=17,
        )


def _optimize(raw: Path, out: Path, config: Any) -> None:
    """Fuse transformer blocks with ONNX Runtime's optimizer; copy ``raw`` when not BERT-like."""
    if config.model_type not in _BERT_LIKE:
        logger.info("no fusion recipe for model_type %r; keeping the plain export", config.model_type)
        raw.rename(out)
        return
    from onnxruntime.transformers.optimizer import optimize_model

    with _quiet_onnxruntime_logs():
        optimized = optimize_model(
            str(raw),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
            use_gpu=False,
        )
        fused = optimized.get_fused_operator_statistics()
        optimized.save_model_to_file(str(out))
    logger.debug("ONNX fusions: %s", fused)
    raw.unlink()


def _check_export(out: Path) -> None:
    """Step 4: raise if the ONNX graph does not reproduce the torch embeddings of the check texts."""
    import onnxruntime as ort

    check = np.load(out / _CHECK_FILE)
    expected = check["expected"]
    session = ort.InferenceSession(str(out / MODEL_FILE), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": check["input_ids"], "attention_mask": check["attention_mask"]})[0]
    cos = np.sum(got * expected, axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    if float(cos.min()) < _MIN_CHECK_COSINE:
        raise RuntimeError(f"ONNX export does not match the torch model (cosines {cos.round(4).tolist()})")


def export_onnx(folder: Path, out: Path) -> None:
    """Export the sentence-transformers model in ``folder`` into a new directory ``out``.

    The word-embedding table (250k x 384 floats: 0.38 of the model's 0.47 GB) goes through the
    export, the fusion and the quantization as a stand-in of :data:`_STAND_IN_ROWS` rows and is put
    back into the finished files: ONNX's and ONNX Runtime's Python tools copy a model several
    times, which took the peak RSS of a first run to 5.2 GB. Each step also runs in a process of
    its own, so the peak is the largest step's (1.8 GB, the torch model and its export), not the sum of what each leaves behind.
    Writes ``model.onnx`` and ``model_int8.onnx`` (the int8 copy is a few seconds more here).
    """
    out.mkdir(parents=True)
    _in_child(_export_stand_in, folder, out)
    _in_child(_fuse_and_quantize, out)
    for name in (MODEL_FILE, INT8_FILE):
        _in_child(_put_back_word_embeddings, out, name)
    _in_child(_check_export, out)
    for leftover in (_SMALL_FILE, _TABLE_FILE, _CHECK_FILE, _CONFIG_FILE):
        (out / leftover).unlink()


#: Rows of the stand-in word-embedding table (a prime, so no other initializer has its shape).
_STAND_IN_ROWS = 1031
_RAW_FILE, _SMALL_FILE, _TABLE_FILE, _CHECK_FILE, _CONFIG_FILE = (
    "raw.onnx", "small.onnx", "word_embeddings.npy", "check.npz", "config.json")


def _in_child(step, *args) -> None:
    """Run ``step(*args)`` in a fresh process (spawned without the caller's ``__main__``); re-raise its error."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from ..workers import without_main_module

    with without_main_module(), ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(step, *args).result()


def _export_stand_in(folder: Path, out: Path) -> None:
    """Step 1: the tokenizer, the real table (``.npy``), the check vectors, and the graph exported with
    the stand-in table."""
    import torch
    from tokenizers import Tokenizer

    model = _load_sentence_transformer(folder)
    transformer = model[0]
    tokenizer = getattr(model.tokenizer, "backend_tokenizer", None)
    pad_id = model.tokenizer.pad_token_id or 0
    pad_token = model.tokenizer.pad_token or "[PAD]"
    if tokenizer is None:
        raise ValueError(f"{folder}: the ONNX backends need a fast (tokenizers) tokenizer")
    tokenizer.save(str(out / TOKENIZER_FILE))
    check_tok = Tokenizer.from_file(str(out / TOKENIZER_FILE))
    check_tok.enable_truncation(max_length=model.max_seq_length)
    check_tok.enable_padding(pad_id=pad_id, pad_token=pad_token)
    inputs = _tokenize(check_tok, _CHECK_TEXTS)
    with torch.inference_mode():
        expected = _wrapper(model)(*(torch.from_numpy(v) for v in inputs.values()))[0].numpy()
    np.savez(out / _CHECK_FILE, expected=expected, **inputs)
    meta = {
        "dim": int(expected.shape[1]),
        "max_seq_length": int(model.max_seq_length),
        "pad_id": int(pad_id),
        "pad_token": pad_token,
        "source": str(folder),
        "mean_pooling": mean_pooling_only(model),
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")

    embeddings = transformer.auto_model.get_input_embeddings()
    if len(embeddings.weight) <= _STAND_IN_ROWS:
        raise ValueError("vocabulary too small for the stand-in table")
    np.save(out / _TABLE_FILE, embeddings.weight.detach().numpy())
    embeddings.weight = torch.nn.Parameter(embeddings.weight.detach()[:_STAND_IN_ROWS].clone(), requires_grad=False)
    _export_graph(model, {k: np.minimum(v, _STAND_IN_ROWS - 1) if k == "input_ids" else v
                          for k, v in inputs.items()}, out / _RAW_FILE)
    config = transformer.auto_model.config
    (out / _CONFIG_FILE).write_text(json.dumps({"model_type": config.model_type, "hidden_size": config.hidden_size,
                                                "num_attention_heads": config.num_attention_heads}))


def _fuse_and_quantize(out: Path) -> None:
    """Step 2: fuse the stand-in graph (ONNX Runtime's transformer optimizer), and quantize it to int8."""
    from types import SimpleNamespace

    config = SimpleNamespace(**json.loads((out / _CONFIG_FILE).read_text()))
    _optimize(out / _RAW_FILE, out / _SMALL_FILE, config)
    quantize_int8(out / _SMALL_FILE, out / INT8_FILE)


def _put_back_word_embeddings(out: Path, name: str) -> None:
    """Step 3: write ``out/name`` (from the stand-in fp32 graph, or the int8 one) with the real table back
    in place of the stand-in (the one initializer of its shape)."""
    import onnx
    from onnx import numpy_helper

    src = out / (_SMALL_FILE if name == MODEL_FILE else name)
    model = onnx.load(str(src))
    table = np.load(out / _TABLE_FILE, mmap_mode="r")
    hits = [t for t in model.graph.initializer if list(t.dims) == [_STAND_IN_ROWS, table.shape[1]]]
    if len(hits) != 1:
        raise RuntimeError(f"{src}: {len(hits)} initializers look like the stand-in word-embedding table")
    hits[0].CopyFrom(numpy_helper.from_array(np.asarray(table, dtype=np.float32), name=hits[0].name))
    del table
    onnx.save(model, str(out / name))


def quantize_int8(src: Path, out: Path) -> None:
    """Write an int8 (dynamic, per-channel) copy of ONNX model ``src`` to file ``out``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_onnxruntime_logs():
        quantize_dynamic(
            str(src),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            # shape inference cannot type the outputs of fused (com.microsoft) nodes
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def read_meta(onnx_dir: Path) -> dict[str, Any]:
    """The ``storyclust-onnx.json`` written by :func:`export_onnx`."""
    return json.loads((onnx_dir / META_FILE).read_text(encoding="utf-8"))
