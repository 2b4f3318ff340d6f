"""Search: dense (FAISS), lexical (BM25 over folded jieba words) and their fusion.

Each retriever returns ``(ids, scores)``: int64 passage rows and float32 scores,
best first. Fusion is score-level with per-query min-max normalisation:

    hybrid(p) = w * (d(p) - min d) / (max d - min d) + (1 - w) * (b(p) - min b) / (max b - min b)

over the union of both candidate lists, where d is the cosine and b the BM25 score
of passage p (computed exactly for every candidate, not only those each list found).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .text import tokenize

EXACT_LIMIT = 200_000  # above this many passages the dense index is HNSW


class DenseIndex:
    """Inner-product search over L2-normalised vectors (exact, or HNSW when large)."""

    def __init__(self, index):
        self.index = index

    @classmethod
    def build(cls, vectors: np.ndarray, exact_limit: int = EXACT_LIMIT) -> DenseIndex:
        """Index (n, dim) float32 L2-normalised vectors."""
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        if len(vectors) <= exact_limit:
            index = faiss.IndexFlatIP(dim)
        else:
            index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 80
            index.hnsw.efSearch = 128
        index.add(vectors)
        return cls(index)

    @property
    def size(self) -> int:
        """Number of indexed vectors."""
        return int(self.index.ntotal)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows for one (dim,) query vector: (ids (k,), cosines (k,))."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores, ids = self.index.search(query.reshape(1, -1).astype(np.float32), k)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), scores[0][keep]

    def vectors(self, ids: np.ndarray | None = None) -> np.ndarray:
        """Stored vectors for some rows (all when ids is None): (len(ids), dim) float32."""
        if ids is None:
            return self.index.reconstruct_n(0, self.size)
        if not len(ids):
            return np.zeros((0, self.index.d), np.float32)
        return self.index.reconstruct_batch(np.asarray(ids, dtype=np.int64))

    def save(self, path: Path) -> None:
        """Write the FAISS index file."""
        import faiss

        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path) -> DenseIndex:
        """Read a FAISS index file written by ``save``."""
        import faiss

        return cls(faiss.read_index(str(path)))


class LexicalIndex:
    """BM25 (bm25s, Lucene variant) over folded jieba words."""

    def __init__(self, bm25):
        self.bm25 = bm25

    @classmethod
    def build(cls, texts: list[str], k1: float = 1.2, b: float = 0.75) -> LexicalIndex:
        """Tokenise and index passage texts."""
        bm25s = _bm25s()
        bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        bm25.index([tokenize(t) or [""] for t in texts], show_progress=False)
        return cls(bm25)

    def scores(self, question: str) -> np.ndarray:
        """BM25 score of every passage for a question: (n_passages,) float32."""
        tokens = [t for t in tokenize(question) if t in self.bm25.vocab_dict]
        if not tokens:
            return np.zeros(self.bm25.scores["num_docs"], dtype=np.float32)
        return self.bm25.get_scores(tokens).astype(np.float32)

    def search(self, question: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows with a positive score: (ids (<=k,), scores)."""
        scores = self.scores(question)
        return top_k(scores, k)

    def save(self, folder: Path) -> None:
        """Write bm25s's arrays and vocabulary (JSON and .npy; no pickle)."""
        self.bm25.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> LexicalIndex:
        """Read an index written by ``save``."""
        return cls(_bm25s().BM25.load(str(folder), mmap=mmap, show_progress=False, verbosity=0))


def _bm25s():
    """Import bm25s with its logger quietened (it sets itself to DEBUG)."""
    import logging

    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the k largest positive scores, best first (ties by row)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    part = np.argpartition(-scores, k - 1)[:k]
    order = part[np.lexsort((part, -scores[part]))]
    order = order[scores[order] > 0]
    return order.astype(np.int64), scores[order]


def minmax(x: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by (x - min) / (max - min); all zeros when the range is empty."""
    if len(x) == 0:
        return x.astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    if hi - lo <= 1e-9:
        return np.zeros_like(x, dtype=np.float32) if hi <= 0 else np.ones_like(x, dtype=np.float32)
    return ((x - lo) / (hi - lo)).astype(np.float32)


def fuse_scores(
    ids: np.ndarray, dense: np.ndarray, lexical: np.ndarray, weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """Min-max fuse two score arrays over the same candidate ids; best first.

    ``weight`` is the dense share w in ``w * dense_n + (1 - w) * lexical_n``.
    """
    fused = weight * minmax(dense) + (1.0 - weight) * minmax(lexical)
    order = np.lexsort((ids, -fused))
    return ids[order], fused[order]


def fuse_rankings(rankings: list[np.ndarray], k: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal-rank fusion: score(p) = sum over lists of 1 / (k + rank), rank from 1."""
    total: dict[int, float] = {}
    for ranking in rankings:
        for rank, pid in enumerate(ranking, 1):
            total[int(pid)] = total.get(int(pid), 0.0) + 1.0 / (k + rank)
    items = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))
    return np.array([i for i, _ in items], dtype=np.int64), np.array([s for _, s in items], dtype=np.float32)
