"""Search: dense (FAISS flat or IVF), lexical (BM25 over folded jieba words) and their fusion.

Each retriever returns ``(ids, scores)``: int64 passage rows and float32 scores,
best first. Fusion is score-level with per-query min-max normalisation:

    hybrid(p) = w * (d(p) - min d) / (max d - min d) + (1 - w) * (b(p) - min b) / (max b - min b)

over the union of both candidate lists, where d is the cosine and b the BM25 score
of passage p (computed exactly for every candidate, not only those each list found).
``TitleIndex`` finds the documents a question names by their title, for the pipeline's rerank.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .config import IndexConfig
from .errors import IndexCorruptError
from .text import fold, tokenize

_INDEX = IndexConfig()

# nprobe is the smallest of these steps whose recall@10 on probe queries reaches IndexConfig.ivf_target_recall.
# A probe query is two random stored vectors added, plus noise, normalised: like a real question it sits
# between passages rather than on one (docs/tuning.md compares its recall with real questions').
NPROBE_STEPS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
# One query at a time searches fastest on one OpenMP thread: faiss fans even a single query
# out to every thread, and on a busy 2-core machine the spin-waiting made a 10k exact search
# take 24 ms on two threads against 1.2 ms on one. Builds use every core.
SEARCH_THREADS = 1


def build_threads() -> int:
    """OpenMP threads for building and calibrating an index: every core (or $QA_BUILD_THREADS)."""
    try:
        return max(1, int(os.environ.get("QA_BUILD_THREADS", "")))
    except ValueError:
        return os.cpu_count() or 1


class DenseIndex:
    """Inner-product search over L2-normalised vectors: exact (flat), or IVF when large."""

    def __init__(self, index):
        self.index = index

    @classmethod
    def build(cls, vectors: np.ndarray, exact_limit: int = _INDEX.exact_limit,
              target_recall: float = _INDEX.ivf_target_recall, seed: int = 0) -> DenseIndex:
        """Index (n, dim) float32 L2-normalised vectors: flat up to ``exact_limit``, else IVF-Flat.

        The IVF index has about 2 sqrt(n) lists (at least 39 training points each), k-means
        trained on a sample of up to 78 points a list, and the smallest nprobe whose recall@10
        against exact search on probe queries reaches ``target_recall``. Stored vectors
        stay exact (no compression), so returned scores are exact cosines.
        """
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        faiss.omp_set_num_threads(build_threads())
        if n <= exact_limit:
            index = faiss.IndexFlatIP(dim)
            index.add(vectors)
            return cls(index)
        nlist = max(1, min(int(2 * math.sqrt(n)), n // 39))
        rng = np.random.default_rng(seed)
        train = vectors if n <= 39 * nlist * 2 else vectors[np.sort(rng.choice(n, 39 * nlist * 2, replace=False))]
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.cp.niter = 12
        index.train(train)
        index.add(vectors)
        index.make_direct_map()  # reconstruct_batch for fusion
        index.nprobe = _calibrate_nprobe(index, vectors, rng, target_recall)
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
        import faiss

        faiss.omp_set_num_threads(SEARCH_THREADS)
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


class SentenceVectors:
    """The vectors of every passage's sentences (``split.quote_spans``), for sentence-level dense scoring.

    Rows ``offsets[i]:offsets[i + 1]`` of ``vectors`` belong to passage ``i``. Stored as float16 (a
    cosine moves by under 0.001) and left on disk when loaded: a question reads the rows of its
    top candidates only.
    """

    def __init__(self, vectors: np.ndarray, offsets: np.ndarray):
        self.vectors = vectors
        self.offsets = offsets

    @classmethod
    def build(cls, vectors: np.ndarray, counts: Iterable[int]) -> SentenceVectors:
        """From (total sentences, dim) vectors, passage by passage, and each passage's sentence count."""
        offsets = row_offsets(counts)
        if offsets[-1] != len(vectors):
            raise ValueError(f"{len(vectors)} sentence vectors for {int(offsets[-1])} sentences")
        return cls(np.asarray(vectors, dtype=np.float16), offsets)

    @property
    def size(self) -> int:
        """Number of passages."""
        return len(self.offsets) - 1

    def of(self, passage: int) -> np.ndarray:
        """(sentences, dim) float32 vectors of one passage's sentences."""
        return np.asarray(self.vectors[self.offsets[passage] : self.offsets[passage + 1]], dtype=np.float32)

    def best(self, ids: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Each passage's highest sentence cosine to a (dim,) query vector: (len(ids),) float32."""
        return best_cosines([self.of(int(i)) for i in ids], query)

    def save(self, folder: Path) -> None:
        """Write ``vectors.npy`` and ``offsets.npy`` into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "vectors.npy", self.vectors)
        np.save(folder / "offsets.npy", self.offsets)

    @classmethod
    def load(cls, folder: Path) -> SentenceVectors:
        """Read what ``save`` wrote; the vectors stay on disk and are read row runs at a time (``NpyRows``)."""
        offsets = np.load(folder / "offsets.npy")
        vectors = NpyRows(folder / "vectors.npy")
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[-1] != len(vectors):
            raise ValueError(f"sentence offsets end at {offsets[-1] if len(offsets) else None}, "
                             f"vectors hold {len(vectors)} rows")
        return cls(vectors, offsets)


class NpyRows:
    """The rows of a 2-d ``.npy`` file, read with ``os.pread`` when sliced: nothing is mapped into the
    process. A memory map was tried first: a question reads about 20 short runs of rows, but the pages
    around each were mapped with them, and with a freshly written file the serving process of a
    100k-passage index grew by the whole 715 MB file over 100 questions (MADV_RANDOM did not help)."""

    def __init__(self, path: Path):
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = header(fh)
            self.offset = fh.tell()
        if len(shape) != 2 or fortran or dtype.hasobject:
            raise ValueError(f"{path.name} is not a 2-d C-ordered array")
        self.path, self.shape, self.dtype = path, shape, dtype
        self.row_bytes = shape[1] * dtype.itemsize
        self._fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, step = rows.indices(self.shape[0])
        n = max(0, stop - start)
        if step != 1:
            raise IndexError("NpyRows reads runs of rows (step 1)")
        data = os.pread(self._fd, n * self.row_bytes, self.offset + start * self.row_bytes)
        if len(data) != n * self.row_bytes:
            raise IndexCorruptError(f"{self.path} ends early (truncated?); rebuild the index with: "
                                    f"python -m qa build --index {self.path.parent.parent.parent}")
        return np.frombuffer(data, dtype=self.dtype).reshape(n, self.shape[1])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)


def recall_at(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean over queries of |approx top-k ∩ exact top-k| / |exact top-k| (rows are queries; -1 pads)."""
    out = []
    for a, e in zip(approx, exact):
        truth = {int(x) for x in e[:k] if x >= 0}
        out.append(len(truth & set(a[:k].tolist())) / len(truth) if truth else 1.0)
    return float(np.mean(out))


def _calibrate_nprobe(index, vectors: np.ndarray, rng: np.random.Generator, target_recall: float,
                      n_probe_queries: int = 200,
                      k: int = 10) -> int:
    """Smallest step of NPROBE_STEPS whose mean recall@k against exact search on probe queries
    reaches ``target_recall`` (see NPROBE_STEPS for the probes)."""
    import faiss

    n, dim = vectors.shape
    m = min(n, n_probe_queries)
    a, b = rng.choice(n, m, replace=False), rng.choice(n, m, replace=False)
    queries = vectors[a] + vectors[b] + rng.standard_normal((m, dim)).astype(np.float32) * (0.87 / math.sqrt(dim))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    k = min(k, n)
    _, truth = faiss.knn(queries, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)
    for nprobe in NPROBE_STEPS:
        if nprobe >= index.nlist:
            break
        index.nprobe = nprobe
        _, got = index.search(queries, k)
        if recall_at(got, truth, k) >= target_recall:
            return nprobe
    return index.nlist


class LexicalIndex:
    """BM25 (bm25s, Lucene variant) over folded jieba words."""

    def __init__(self, bm25):
        self.bm25 = bm25

    @classmethod
    def build(cls, texts: list[str], k1: float = _INDEX.bm25_k1, b: float = _INDEX.bm25_b) -> LexicalIndex:
        """Tokenise and index passage texts; identical texts are tokenised once and share their ids."""
        vocab: dict[str, int] = {}
        ids_of: dict[str, list[int]] = {}
        corpus_ids = []
        for text in texts:
            ids = ids_of.get(text)
            if ids is None:
                ids = ids_of[text] = [vocab.setdefault(w, len(vocab)) for w in tokenize(text) or [""]]
            corpus_ids.append(ids)
        bm25 = _bm25s().BM25(k1=k1, b=b, method="lucene")
        bm25.index((corpus_ids, vocab), show_progress=False)
        return cls(bm25)

    @property
    def vocab(self) -> dict[str, int]:
        """Every token of the indexed passages (abstention asks it whether the corpus uses a word)."""
        return self.bm25.vocab_dict

    def score(self, question: str) -> BM25Scores:
        """A question's BM25 scores, as retrieval and abstention read them (``BM25Scores``)."""
        return BM25Scores(self.scores(question))

    def scores(self, question: str) -> np.ndarray:
        """BM25 score of every passage for a question: (n_passages,) float32."""
        tokens = [t for t in tokenize(question) if t in self.bm25.vocab_dict]
        if not tokens:
            return np.zeros(self.bm25.scores["num_docs"], dtype=np.float32)
        return self.bm25.get_scores(tokens).astype(np.float32)

    def save(self, folder: Path) -> None:
        """Write bm25s's arrays and vocabulary (JSON and .npy; no pickle)."""
        self.bm25.save(str(folder), show_progress=False)

    @classmethod
    def load(cls, folder: Path, mmap: bool = False) -> LexicalIndex:
        """Read an index written by ``save``."""
        return cls(_bm25s().BM25.load(str(folder), mmap=mmap, show_progress=False, verbosity=0))


class BM25Scores:
    """One question's BM25 scores over every passage, ``array`` (n_passages,) float32: its best rows
    (``top``) or the scores of given rows (``of``). A Milvus index answers the same two calls."""

    def __init__(self, array: np.ndarray):
        self.array = array

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the k best passages that hold a word of the question (``top_k``)."""
        return top_k(self.array, k)

    def of(self, ids: np.ndarray) -> np.ndarray:
        """Scores of passage rows ``ids``: (len(ids),) float32, 0 where no word matches."""
        return self.array[ids]


def _bm25s():
    """Import bm25s with its logger quietened (it sets itself to DEBUG)."""
    import logging

    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class TitleIndex:
    """Which documents a question names by their title ("前肛鳗生活在水深为多少的水域?" names 前肛鳗).

    A title names its document when the folded question contains it, without a trailing
    disambiguation ("大曲车站 (秋田县)" is named by 大曲车站), and no longer matched title contains
    this one ("异齿前肛鳗以什么为食?" names 异齿前肛鳗, not 前肛鳗). Titles under 2 or over ``max_chars``
    characters are not matched: a news headline is never typed as a question.
    """

    _DISAMBIGUATION = re.compile(r"\s*[(（][^()（）]*[)）]\s*$")

    def __init__(self, titles: Iterable[tuple[str, str]], max_chars: int = 30):
        self.docs: dict[str, set[str]] = {}
        for doc_id, title in titles:
            key = fold(self._DISAMBIGUATION.sub("", title or "")).strip()
            if 2 <= len(key) <= max_chars:
                self.docs.setdefault(key, set()).add(doc_id)
        self._longest = max(map(len, self.docs), default=0)

    def named(self, question: str) -> set[str]:
        """Ids of the documents whose title the question names (longest titles first)."""
        q = fold(question)
        found: list[str] = []
        for n in range(min(self._longest, len(q)), 1, -1):  # dict lookups: cost grows with the question, not the corpus
            for i in range(len(q) - n + 1):
                key = q[i : i + n]
                if key in self.docs and not any(key in f for f in found):
                    found.append(key)
        return set().union(*(self.docs[k] for k in found))


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the k largest positive scores, best first (ties by row)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    part = np.argpartition(-scores, k - 1)[:k]
    order = part[np.lexsort((part, -scores[part]))]
    order = order[scores[order] > 0]
    return order.astype(np.int64), scores[order]


def row_offsets(counts: Iterable[int]) -> np.ndarray:
    """Where each passage's sentence rows start, and the end: (passages + 1,) int64 from the counts."""
    return np.concatenate([[0], np.cumsum(np.fromiter(counts, dtype=np.int64))]).astype(np.int64)


def best_cosines(rows: list[np.ndarray], query: np.ndarray) -> np.ndarray:
    """The highest cosine of each (sentences, dim) block of ``rows`` to a (dim,) query: (len(rows),) float32."""
    if not rows:
        return np.zeros(0, np.float32)
    cos = np.concatenate(rows) @ query.astype(np.float32)
    starts = np.concatenate([[0], np.cumsum([len(r) for r in rows])[:-1]])
    return np.maximum.reduceat(cos, starts).astype(np.float32)


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
