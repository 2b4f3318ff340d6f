"""Milvus search: the dense, BM25 and sentence searches of an index held in Milvus (``qa.milvus_store``).

``MilvusDense``, ``MilvusLexical`` and ``MilvusSentences`` answer the calls of ``qa.stores``'s
``DenseSearch``, ``LexicalSearch`` and ``SentenceSearch`` with Milvus requests, so retrieval, the
rerank, abstention and the quote run on Milvus as they run on the index folder.

BM25 runs inside Milvus (its BM25 function and sparse inverted index) over the same words the folder
store's bm25s reads: the folded text's jieba search-mode words, stop words dropped (``qa.text.tokenize``),
written space-joined (``bm25_words``). The engine's analyzer only splits them again: Milvus Lite's
``standard`` tokenizer (runs of word characters; ``.`` and ``'`` inside a word become ``_``) and a
server's ``whitespace`` tokenizer. Letting the analyzer cut the folded text with its own jieba
agreed less with the folder store (DRCD dev, 300 questions: top-1 0.997 and top-10 overlap 0.87 for
the raw text, 0.997 / 0.97 for these words under jieba's exact mode, 1.000 / 0.996 as written here).

pymilvus is imported only when a Milvus index is opened; its errors become ``IndexServiceError``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import IndexServiceError, QAError
from .search import best_cosines
from .text import tokenize

LITE_ANALYZER = {"tokenizer": "standard"}
SERVER_ANALYZER = {"tokenizer": "whitespace"}
SENTENCE_CACHE = 8192  # passages whose sentence vectors a search object keeps


def join_words(tokens: list[str]) -> str:
    """Words as Milvus's BM25 reads them: space-joined, ``.``/``'`` as ``_`` (its analyzer splits on them)."""
    return " ".join(w.replace(".", "_").replace("'", "_") for w in tokens)


def bm25_words(text: str) -> str:
    """The words Milvus's BM25 indexes for ``text``: ``tokenize``'s, joined by ``join_words``."""
    return join_words(tokenize(text))


@contextlib.contextmanager
def milvus_errors(where: str, uri: str) -> Iterator[None]:
    """Turn what pymilvus and grpc raise into one ``IndexServiceError`` line that says what to do."""
    try:
        yield
    except QAError:
        raise
    except Exception as exc:  # noqa: BLE001 - pymilvus raises its own and grpc's exceptions
        if not type(exc).__module__.startswith(("pymilvus", "grpc", "milvus_lite")):
            raise
        message = " ".join(str(getattr(exc, "message", None) or exc).split())[:300]
        if "Open local milvus failed" in message:
            raise IndexServiceError(_lite_failure(where, uri, message)) from None
        if getattr(exc, "code", None) == 2 or "Fail connecting" in message or "UNAVAILABLE" in message:
            raise IndexServiceError(f"cannot reach Milvus at {uri} ({message}); start it (docs/scaling.md) or "
                                    f"check the address in --index {where}") from None
        raise IndexServiceError(f"Milvus refused a request for {where}: {message}") from None


def _lite_failure(where: str, uri: str, message: str) -> str:
    """Why Milvus Lite could not open ``uri``: another process holds its lock, or something else."""
    if "not exists" in message:
        return f"cannot open {where}: the folder {str(Path(uri).parent)!r} does not exist; create it or pass another path"
    try:
        with open(Path(uri) / "LOCK", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fh, fcntl.LOCK_UN)
    except BlockingIOError:
        return (f"cannot open {where}: Milvus Lite serves one process at a time and another one holds {uri!r} "
                f"(the app, or a build?); stop it and try again, or serve the index from a Milvus server "
                f"(docs/scaling.md)")
    except OSError as exc:
        return f"cannot open {where}: {uri!r} is not a Milvus Lite folder ({exc.strerror}); pass another path"
    return f"Milvus Lite cannot open {uri!r} (damaged?); build the index again into another milvus:PATH.db"


_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


def connect(uri: str, where: str):
    """A ``MilvusClient`` for ``uri`` (a ``.db`` path: Milvus Lite in this process), one per process."""
    with _clients_lock:
        client = _clients.get(uri)
        if client is None:
            for name in ("pymilvus", "milvus_lite"):  # they log tracebacks of errors we report as one line
                logging.getLogger(name).setLevel(logging.CRITICAL)
            from pymilvus import MilvusClient

            for name in ("pymilvus", "milvus_lite"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
            with milvus_errors(where, uri):
                client = _clients[uri] = MilvusClient(uri=uri, timeout=30)
    return client


def _hits(result, bm25: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(rows, scores) of one query's search result, best first, ties by row (as the folder store's).
    Milvus Lite reports a BM25 score negated, a server as it is: its magnitude is the score."""
    hits = result[0] if result else []
    ids = np.array([h["id"] for h in hits], dtype=np.int64)
    scores = np.array([abs(h["distance"]) if bm25 else h["distance"] for h in hits], dtype=np.float32)
    order = np.lexsort((ids, -scores))
    return ids[order], scores[order]


def _id_list(ids) -> str:
    """A filter's list of integer ids: ``[3, 17, 20]``."""
    return "[" + ", ".join(str(int(i)) for i in ids) + "]"


class MilvusDense:
    """Inner-product search over the passage vectors of a Milvus collection (rows are its primary keys)."""

    def __init__(self, client, collection: str, size: int, where: str, uri: str):
        self.client, self.collection, self._size, self.where, self.uri = client, collection, size, where, uri

    @property
    def size(self) -> int:
        """Number of indexed vectors."""
        return self._size

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows for one (dim,) query vector: (ids (k,), cosines (k,))."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        with milvus_errors(self.where, self.uri):
            res = self.client.search(self.collection, data=[np.asarray(query, np.float32).tolist()],
                                     anns_field="vector", limit=k, output_fields=["id"],
                                     search_params={"metric_type": "IP"})
        return _hits(res)

    def vectors(self, ids: np.ndarray | None = None) -> np.ndarray:
        """Stored vectors of some rows (all when ids is None): (len(ids), dim) float32."""
        ids = np.arange(self.size) if ids is None else np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return np.zeros((0, 0), np.float32)
        with milvus_errors(self.where, self.uri):
            got = {r["id"]: r["vector"] for r in self.client.get(self.collection, ids=[int(i) for i in ids],
                                                                  output_fields=["id", "vector"])}
        return np.array([got[int(i)] for i in ids], dtype=np.float32)


class MilvusBM25Scores:
    """One question's BM25 scores, asked of Milvus when needed: ``top(k)`` searches once for the most
    rows asked so far; ``of(rows)`` searches those rows only (a filter on the primary key)."""

    def __init__(self, lexical: MilvusLexical, words: str):
        self.lexical, self.words = lexical, words
        self._top: tuple[int, np.ndarray, np.ndarray] | None = None

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the k best passages that hold a word of the question."""
        if self._top is None or self._top[0] < k:
            self._top = (k, *self.lexical.search(self.words, k))
        return self._top[1][:k], self._top[2][:k]

    def of(self, ids: np.ndarray) -> np.ndarray:
        """Scores of passage rows ``ids``: (len(ids),) float32, 0 where no word matches."""
        ids = np.asarray(ids, dtype=np.int64)
        rows, scores = self.lexical.search(self.words, len(ids), f"id in {_id_list(ids)}")
        found = dict(zip(rows.tolist(), scores.tolist()))
        return np.array([found.get(int(i), 0.0) for i in ids], dtype=np.float32)


class MilvusLexical:
    """BM25 in Milvus over the passages' ``bm25_words``; ``vocab`` is every word they hold (stored
    with the index, for abstention's "does the corpus use this word")."""

    def __init__(self, client, collection: str, vocab: dict[str, int], where: str, uri: str):
        self.client, self.collection, self._vocab, self.where, self.uri = client, collection, vocab, where, uri

    @property
    def vocab(self) -> dict[str, int]:
        """Every word of the indexed passages."""
        return self._vocab

    def score(self, question: str) -> MilvusBM25Scores:
        """The question's BM25 scores (``MilvusBM25Scores``)."""
        return MilvusBM25Scores(self, bm25_words(question))

    def search(self, words: str, k: int, filter: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Rows and BM25 scores of the k best passages for ``words`` (among ``filter``'s), best first."""
        if not words.strip() or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        with milvus_errors(self.where, self.uri):
            res = self.client.search(self.collection, data=[words], anns_field="sparse", limit=k, filter=filter,
                                     output_fields=["id"], search_params={"metric_type": "BM25"})
        return _hits(res, bm25=True)


class MilvusSentences:
    """Every passage's sentence vectors in a Milvus collection: sentence ``offsets[r] + j`` (its primary
    key) is sentence j of passage r. Read a few passages at a time and kept for ``SENTENCE_CACHE``
    passages, since the same passages come back question after question."""

    def __init__(self, client, collection: str, offsets: np.ndarray, where: str, uri: str):
        self.client, self.collection, self.offsets, self.where, self.uri = client, collection, offsets, where, uri
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        """Number of passages."""
        return len(self.offsets) - 1

    def _rows(self, passages: list[int]) -> dict[int, np.ndarray]:
        """{passage: (sentences, dim) float32} for ``passages``, one request for those not cached."""
        with self._lock:
            out = {p: self._cache[p] for p in passages if p in self._cache}
        missing = sorted({p for p in passages if p not in out})
        if missing:
            ids = [i for p in missing for i in range(int(self.offsets[p]), int(self.offsets[p + 1]))]
            with milvus_errors(self.where, self.uri):
                got = {r["id"]: r["vector"] for r in self.client.get(self.collection, ids=ids,
                                                                      output_fields=["id", "vector"])}
            for p in missing:
                out[p] = np.array([got[i] for i in range(int(self.offsets[p]), int(self.offsets[p + 1]))],
                                  dtype=np.float32).reshape(-1, self._dim(got))
            with self._lock:
                for p in missing:
                    self._cache[p] = out[p]
                while len(self._cache) > SENTENCE_CACHE:
                    self._cache.popitem(last=False)
        return out

    @staticmethod
    def _dim(got: dict) -> int:
        """The vectors' dimension (0 when none was read)."""
        return len(next(iter(got.values()))) if got else 0

    def of(self, passage: int) -> np.ndarray:
        """(sentences, dim) float32 vectors of one passage's sentences."""
        return self._rows([int(passage)])[int(passage)]

    def best(self, ids: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Each passage's highest sentence cosine to a (dim,) query vector: (len(ids),) float32."""
        got = self._rows([int(i) for i in ids]) if len(ids) else {}
        return best_cosines([got[int(i)] for i in ids], query)
