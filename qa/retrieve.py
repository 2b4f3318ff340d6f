"""Retrieve: the passages a question's words and meaning find, from one retriever or both fused.

``Retriever`` embeds the question (cached), adds CC-CEDICT translations for BM25 when an English
question meets a Chinese corpus, and returns candidates: dense, lexical (BM25) or hybrid,
the union of both lists fused by min-max scores (``qa.search.fuse_scores``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from .abstain import CorpusWords
from .config import SearchConfig
from .encode import Encoder
from .schema import Mode
from .search import fuse_scores
from .stores import DenseSearch, LexicalScores, LexicalSearch
from .text import has_cjk
from .translate import translate

QUERY_CACHE = 2048  # recently asked questions whose vectors are kept


class Query(NamedTuple):
    """A question as retrieval reads it. ``translation``: ``qa.translate.translate``'s result for an
    English question over a Chinese corpus, else None; ``lexical``: the text BM25 scores (with the
    translations in front); ``vector``: (dim,) float32, L2-normalised; ``bm25``: the question's BM25
    scores (``LexicalScores``: its top rows, or the scores of given rows), or None in dense mode."""

    text: str
    translation: tuple[list[str], list[str], int] | None
    lexical: str
    vector: np.ndarray
    bm25: LexicalScores | None


class Retriever:
    """Dense, lexical and fused candidates for a question (``SearchConfig``)."""

    def __init__(self, dense: DenseSearch, lexical: LexicalSearch, encoder: Encoder, words: CorpusWords,
                 config: SearchConfig = SearchConfig()):
        self.dense, self.lexical, self.encoder, self.words, self.config = dense, lexical, encoder, words, config
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def query_vector(self, question: str) -> np.ndarray:
        """The (dim,) query embedding, cached for recently asked questions."""
        with self._lock:
            vec = self._cache.get(question)
        if vec is None:
            vec = self.encoder.encode_query(question)
            with self._lock:
                self._cache[question] = vec
                if len(self._cache) > QUERY_CACHE:
                    self._cache.popitem(last=False)
        return vec

    def translation(self, question: str) -> tuple[list[str], list[str], int] | None:
        """CC-CEDICT translation of an English question over a Chinese corpus, else None."""
        if has_cjk(question) or not self.words.cjk:
            return None
        return translate(question, self.words.present, self.config.translations_per_word)

    @staticmethod
    def lexical_query(question: str, tr: tuple[list[str], list[str], int] | None) -> str:
        """The text BM25 scores: the question, after its CC-CEDICT translations ``tr`` (``translation``)
        when it is English over a Chinese corpus."""
        return question if tr is None else " ".join(tr[0]) + " " + question

    def query(self, question: str, mode: Mode) -> Query:
        """Everything retrieval and abstention read of one (cleaned) question."""
        vector = self.query_vector(question)
        tr = self.translation(question)
        lexical = self.lexical_query(question, tr)
        return Query(question, tr, lexical, vector, None if mode == "dense" else self.lexical.score(lexical))

    def search(self, query: Query, k: int, mode: Mode) -> tuple[np.ndarray, np.ndarray]:
        """Passage rows and scores, best first: the top ``k`` of one retriever, or for ``hybrid``
        every fused candidate (each retriever's top ``max(candidates, k)``) for the rerank to order."""
        if mode == "dense":
            return self.dense.search(query.vector, k)
        if mode == "bm25":
            return query.bm25.top(k)
        n = max(self.config.candidates, k)
        d_ids, _ = self.dense.search(query.vector, n)
        b_ids, _ = query.bm25.top(n)
        cand = np.union1d(d_ids, b_ids)
        return fuse_scores(cand, self.dense.vectors(cand) @ query.vector, query.bm25.of(cand),
                           self.config.dense_weight)
