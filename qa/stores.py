"""Stores: what retrieval needs from an index, whichever engine holds it.

An index is read and written through a ``Store``: the folder of FAISS and bm25s files
(``qa.folder_store``, the default) or Milvus (``qa.milvus_store``: Milvus Lite in a local file, or a
server). ``qa.index_spec.open_store`` picks one from what ``--index`` names. A store reads back an
``IndexData``: the documents and passages (held in memory, as the rerank, abstention and quote read
their text) and three search objects that answer the calls below, so the stages on top never ask which
engine they run on:

- ``DenseSearch``: ``search(vector, k)`` -> (rows, cosines), best first; ``vectors(rows)``.
- ``LexicalSearch``: ``score(question)`` -> ``BM25Scores``-like (``top(k)``, ``of(rows)``); ``vocab``.
- ``SentenceSearch``: ``of(row)`` -> a passage's sentence vectors; ``best(rows, vector)``.

A passage is named by its row: its position in ``IndexData.passages``.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from .config import IndexConfig
from .schema import Block, Document, Passage
from .text import CharGrams


class DenseSearch(Protocol):
    """Inner-product search over L2-normalised passage vectors."""

    @property
    def size(self) -> int: ...

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows for one (dim,) query: (ids (k,) int64, cosines (k,) float32), best first."""

    def vectors(self, ids: np.ndarray | None = None) -> np.ndarray:
        """(len(ids), dim) float32 stored vectors of some rows."""


class LexicalScores(Protocol):
    """One question's BM25 scores: its best rows, or the scores of given rows."""

    def top(self, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def of(self, ids: np.ndarray) -> np.ndarray: ...


class LexicalSearch(Protocol):
    """BM25 over the folded jieba words of the passages (``qa.text.tokenize``)."""

    @property
    def vocab(self) -> dict[str, int]: ...

    def score(self, question: str) -> LexicalScores: ...


class SentenceSearch(Protocol):
    """The stored vectors of every passage's sentences (``qa.split.quote_spans``)."""

    @property
    def size(self) -> int: ...

    def of(self, passage: int) -> np.ndarray:
        """(sentences, dim) float32 vectors of one passage's sentences."""

    def best(self, ids: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Each passage's highest sentence cosine to a (dim,) query: (len(ids),) float32."""


class IndexData(NamedTuple):
    """What one build holds, read back: the stages' objects and each passage's embedding hash.
    ``grams`` is None for indexes written before the corpus's character pairs were stored, and past
    ``IndexConfig.char_grams_limit`` passages."""

    documents: list[Document]
    passages: list[Passage]
    vhashes: list[str]
    dense: DenseSearch
    lexical: LexicalSearch
    sentences: SentenceSearch
    grams: CharGrams | None


class Reusable(NamedTuple):
    """What a rebuild may reuse of the current build: ``encoder`` (the manifest's name and dim),
    embedding hashes and their vectors, and, when the index has them and the hashes are only the
    passages' (the folder store), the passages and their sentence vectors."""

    encoder: dict
    vhashes: list[str]
    vectors: np.ndarray
    passages: list[Passage] | None
    sentence_vectors: np.ndarray | None


class Built(NamedTuple):
    """One build (or one shard's part of it) ready to be written.

    ``passages`` are every passage of the corpus, with their embedding hashes ``vhashes`` and their
    sentence counts; ``sentence_vhashes`` every sentence's hash, passage by passage. ``rows`` are the
    passages this build embedded (all of them, or those of its shard, ``shard_of``): ``vectors`` is
    (len(rows), dim) and ``sentence_vectors`` holds their sentences' vectors in the same order.
    ``grams``: the characters and character pairs of those passages (None past the limit).
    ``shard``: (I, N), this machine's share of N.
    """

    documents: list[Document]
    passages: list[Passage]
    vhashes: list[str]
    sentence_counts: list[int]
    sentence_vhashes: list[str]
    rows: np.ndarray
    vectors: np.ndarray
    sentence_vectors: np.ndarray
    settings: dict
    grams: CharGrams | None
    shard: tuple[int, int] = (1, 1)


class Written(NamedTuple):
    """What ``Store.write`` did: the build as written and its manifest once it is live; while shards
    of a parallel build are still missing (their numbers in ``missing``), None and None; for the shard
    that completes a parallel build, None and the manifest (``Pipeline.load`` reads it)."""

    data: IndexData | None
    manifest: dict | None
    missing: tuple[int, ...] = ()


Progress = Callable[[str, int, int], None]


class Store(ABC):
    """Where one index lives. ``location`` is how the user names it (``--index``)."""

    location: Path | str

    @abstractmethod
    def read_manifest(self, any_version: bool = False) -> dict:
        """The index's manifest, checked; ``IndexMissingError`` when there is none."""

    @abstractmethod
    def read_index(self, manifest: dict) -> IndexData:
        """The documents, passages and search objects of the build the manifest names."""

    @abstractmethod
    def read_catalog(self, manifest: dict) -> tuple[list[Document], Counter]:
        """The documents and each one's passage count (no vectors read)."""

    @abstractmethod
    def read_extracted(self, read_settings: dict) -> dict[str, tuple[str, Document, list[str]]]:
        """{file name: (recorded hash, document, warnings)} a rebuild may reuse instead of reading the
        file again, when the index was read with ``read_settings``; {} otherwise."""

    @abstractmethod
    def read_reusable(self, wanted: set[str]) -> Reusable | None:
        """Vectors of the current build a rebuild may reuse (at least those of the ``wanted`` hashes);
        None when there is no index or it cannot be read."""

    @abstractmethod
    def building(self) -> AbstractContextManager[None]:
        """Held while one build embeds and writes (a second one is refused where the store can tell)."""

    @abstractmethod
    def write(self, built: Built, config: IndexConfig, progress: Progress | None = None) -> Written:
        """Write ``built`` and make it the index answered from once every shard of it is written."""

    @abstractmethod
    def corpus_path(self, manifest: dict) -> Path | None:
        """The corpus the index was built from, as an absolute path; None when it cannot be known."""

    @abstractmethod
    def rebuild_command(self, manifest: dict | None = None) -> str:
        """The command that rebuilds the index as it was built."""

    @abstractmethod
    def feedback_path(self) -> Path:
        """The file users' ratings of its answers go to (``qa.feedback``), kept across rebuilds."""


def shard_of(key: str, shards: int) -> int:
    """The shard (1..N) that embeds and writes passage or document ``key``: a stable hash (sha1), so
    every machine of a parallel build agrees without talking to the others."""
    return int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:8], 16) % shards + 1


def document_record(d: Document) -> dict:
    """A document as one JSON object (full text, blocks, dropped spans, metadata)."""
    rec = {
        "doc_id": d.doc_id, "title": d.title, "date": d.date, "source": d.source,
        "encoding": d.encoding, "text": d.text,
        "blocks": [[b.start, b.end, b.paragraph, b.heading] for b in d.blocks],
        "dropped": [list(x) for x in d.dropped],
    }
    if d.pages:  # absent for formats without pages, and in indexes written before PDFs were read
        rec["pages"] = list(d.pages)
    return rec


def document_from_record(r: dict) -> Document:
    """Inverse of ``document_record``."""
    return Document(
        doc_id=r["doc_id"], text=r["text"], title=r["title"], date=r["date"],
        source=r["source"], encoding=r["encoding"],
        blocks=tuple(Block(*b) for b in r["blocks"]),
        dropped=tuple(tuple(x) for x in r["dropped"]),
        pages=tuple(r.get("pages", ())),
    )


def passage_of(doc: Document, pid: str, start: int, end: int, paragraph: int, heading: str) -> Passage:
    """A stored passage, its text sliced from its document."""
    return Passage(id=pid, doc_id=doc.doc_id, text=doc.text[start:end], start=start, end=end, title=doc.title,
                   paragraph=paragraph, heading=heading, page=doc.page_at(start))


def chunks(text: str, size: int) -> Iterator[str]:
    """``text`` in pieces of ``size`` characters (one empty piece for empty text)."""
    yield from (text[i : i + size] for i in range(0, max(len(text), 1), size))
