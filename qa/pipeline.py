"""Pipeline: the one way in. Build an index from a corpus, load it, ask it questions.

A thin facade over the stages, each its own object with its own config section (``qa.config``):
``Retriever`` (dense, BM25, fusion), ``Reranker``, ``Abstainer`` and ``pick_quote``; the index is
read and written through its store (``qa.stores``): a folder (``qa.store`` alone knows its files) or
Milvus (``--index milvus:…``, ``qa.milvus_store``).

>>> from qa import Pipeline
>>> p = Pipeline.open("corpus", "index")            # builds on first use
>>> a = p.ask("苏州区块链发展水平在2021年排名第几？", k=5)
>>> "第4名" in a.quote.text
True
>>> a.best.passage.doc_id
'suzhou-blockchain-pilot-zone.zh-Hant.txt'
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import replace
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from . import conversation
from .abstain import Abstainer, CorpusWords
from .build import BuildReport, Progress, build_index
from .config import Config, QuestionConfig, SplitConfig
from .encode import Encoder, encoder_name, load_encoder
from .errors import IndexMismatchError, IndexMissingError, IndexOutdatedError, IndexWriteError, QuestionError
from .index_spec import open_store
from .ingest import current_hashes
from .quote import pick_quote
from .rerank import Reranker
from .retrieve import Query, Retriever
from .schema import MODES, Answer, Document, Hit
from .stores import DenseSearch, IndexData, LexicalSearch, SentenceSearch, Store

MAX_QUESTION_CHARS = QuestionConfig().max_chars

__all__ = ["BuildReport", "Pipeline", "PipelineHolder", "Progress", "clean_question", "is_stale"]


def clean_question(question: str, max_chars: int = MAX_QUESTION_CHARS) -> tuple[str, str | None]:
    """Strip control characters and cap the length at ``max_chars``; return (question, notice or None)."""
    if not isinstance(question, str):
        raise QuestionError(f"question must be text, got {type(question).__name__}")
    given = len(question)
    question = question[: 4 * max_chars]  # room for the spaces cleaning collapses; the rest is never read
    q = question.encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # bytes from a non-UTF-8 terminal
    q = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs") else c for c in q)
    q = " ".join(q.split())
    if not q:
        raise QuestionError("the question is empty; type a question about the documents")
    notice = None
    if len(q) > max_chars or given > len(question):
        notice = f"question truncated to its first {max_chars} of {given} characters"
        q = q[:max_chars]
    return q, notice


class Pipeline:
    """A loaded index plus its encoder: ``ask`` questions, look up documents."""

    def __init__(self, index_dir: Path | str, manifest: dict, data: IndexData, encoder: Encoder,
                 config: Config = Config()):
        self.index_dir, self.manifest, self.encoder, self.config = index_dir, manifest, encoder, config
        self._data = data
        self.documents: dict[str, Document] = {d.doc_id: d for d in data.documents}
        self.passages = data.passages
        self.dense: DenseSearch = data.dense
        self.lexical: LexicalSearch = data.lexical
        self.sentences: SentenceSearch = data.sentences
        self.words = CorpusWords(data.passages, data.lexical.vocab, data.grams, config.index.char_grams_limit)
        self.retriever = Retriever(data.dense, data.lexical, encoder, self.words, config.search)
        self.reranker = Reranker(data.passages, self.documents, data.sentences, config.rerank, config.match)
        self.abstainer = Abstainer(data.passages, data.lexical, data.sentences, self.words, config.abstain,
                                   config.match, config.question)
        self.warnings: list[str] = []  # what the user should know about this index (e.g. a failed refresh)

    # ---- building and loading -------------------------------------------------

    @classmethod
    def build(cls, corpus: str | Path = "corpus", index_dir: str | Path | Store = "index",
              encoder: str | Encoder | None = None, split: SplitConfig | None = None, progress: Progress | None = None,
              config: Config = Config(), reuse: str | Path | Store | None = None) -> tuple[Pipeline, BuildReport]:
        """Read, clean, split, embed and index a corpus; write it atomically to ``index_dir`` (a folder,
        or ``milvus:…``; ``split``: the passage size, ``config.split`` unless given; ``reuse``: another
        index, built with the same encoder, whose vectors are taken instead of embedding again)."""
        target = open_store(index_dir)
        enc = encoder if isinstance(encoder, Encoder) else load_encoder(encoder)
        data, manifest, report = build_index(corpus, target, enc, split or config.split, config.index,
                                             progress, config.read, reuse=reuse)
        return cls(target.location, manifest, data, enc, config), report

    @classmethod
    def build_shard(cls, corpus: str | Path, index_dir: str | Path | Store, shard: tuple[int, int],
                    encoder: str | Encoder | None = None, split: SplitConfig | None = None,
                    progress: Progress | None = None, config: Config = Config()) -> BuildReport:
        """Embed and write share I of N of a corpus into a Milvus index (``shard`` = (I, N)), one machine
        of N; the last of them to finish makes the new index live (``BuildReport.missing`` is then empty)."""
        enc = encoder if isinstance(encoder, Encoder) else load_encoder(encoder)
        return build_index(corpus, open_store(index_dir), enc, split or config.split, config.index, progress,
                           config.read, shard)[2]

    @classmethod
    def load(cls, index_dir: str | Path | Store = "index", encoder: str | Encoder | None = None,
             config: Config = Config()) -> Pipeline:
        """Open a built index; the encoder must be the one it was built with."""
        target = open_store(index_dir)
        index_dir = target.location
        manifest = target.read_manifest()
        built_with = manifest["encoder"]["name"]
        name = _spec_name(built_with if encoder is None else encoder)
        if name != built_with:
            raise IndexMismatchError(
                f"index {str(index_dir)!r} was built with encoder {built_with!r}, not {name!r}; "
                f"use --encoder {built_with} or rebuild: python -m qa build --index {index_dir} --encoder {name}"
            )
        data = target.read_index(manifest)
        enc = encoder if isinstance(encoder, Encoder) else load_encoder(built_with if encoder is None else encoder)
        if enc.dim != manifest["encoder"]["dim"]:
            raise IndexMismatchError(
                f"encoder {name!r} gives {enc.dim}-d vectors but the index holds {manifest['encoder']['dim']}-d; rebuild it"
            )
        return cls(index_dir, manifest, data, enc, config)

    @classmethod
    def open(cls, corpus: str | Path | None = "corpus", index_dir: str | Path | Store = "index",
             encoder: str | Encoder | None = None, progress: Progress | None = None,
             config: Config = Config()) -> Pipeline:
        """Load ``index_dir``, building it first when it is missing or its corpus changed.

        A stale index is rebuilt with the encoder it was built with; asking for another
        encoder than the index's is an ``IndexMismatchError`` (switch encoders with
        ``build``). ``corpus=None`` means the corpus the index was built from (``corpus/`` for a
        new one): an index is refreshed without being told only from the folder it was built from
        (``Store.corpus_path``), never from another that happens to have the same relative name.
        With that folder gone or unknown, the index is served as it is, and so it is when the
        refresh cannot be written (``warnings`` says why). An index of an older format is rebuilt
        the same way (its passage vectors are reused).
        """
        outdated = False
        target = open_store(index_dir)
        try:
            manifest = target.read_manifest()
        except IndexMissingError:
            return cls.build("corpus" if corpus is None else corpus, target, encoder, progress=progress,
                             config=config)[0]
        except IndexOutdatedError:
            manifest, outdated = target.read_manifest(any_version=True), True
        if corpus is None:
            corpus = target.corpus_path(manifest)
            if corpus is None:
                return cls.load(target, encoder, config)
        built_with = manifest["encoder"]["name"]
        if encoder is not None and _spec_name(encoder) != built_with:
            return cls.load(target, encoder, config)  # raises the mismatch with its fix
        if Path(corpus).exists() and (outdated or is_stale(manifest, corpus)):  # rebuilt as it was built
            try:
                return cls.build(corpus, target, encoder or built_with, SplitConfig.of_index(manifest),
                                 progress, config)[0]
            except IndexWriteError as exc:
                if outdated:
                    raise
                served = cls.load(target, encoder, config)  # the index as it was: still whole, still answers
                served.warnings.append(f"the corpus changed but the index could not be refreshed: {exc}; "
                                       f"answering from the index as it was")
                return served
        return cls.load(target, encoder, config)

    @property
    def corpus_path(self) -> Path | None:
        """The corpus this index was built from, as its store records it (None when it cannot be known)."""
        return open_store(self.index_dir).corpus_path(self.manifest)

    @property
    def feedback_path(self) -> Path:
        """The file users' ratings of this index's answers go to (``qa.feedback``)."""
        return open_store(self.index_dir).feedback_path()

    def with_config(self, config: Config) -> Pipeline:
        """The same loaded index with other query-time settings (``split`` and ``index`` apply to builds)."""
        return Pipeline(self.index_dir, self.manifest, self._data, self.encoder, config)

    # ---- asking --------------------------------------------------------------

    def warm(self) -> None:
        """Load what the first question would otherwise wait for (word lists, dictionary, model)."""
        for question in ("预热 warm-up", "warm up"):
            try:
                self.ask(question, k=1)
            except QuestionError:
                pass

    def _sentence_vectors(self, row: int) -> Callable[[list[str]], np.ndarray]:
        """``pick_quote``'s embed function for passage ``row``: its stored sentence vectors."""
        def embed(sentences: list[str]) -> np.ndarray:
            stored = self.sentences.of(row)
            return stored if len(stored) == len(sentences) else self.encoder.encode(sentences, "passage")
        return embed

    def ask(self, question: str, k: int = 5, mode: str = "hybrid", history: Sequence[str] = ()) -> Answer:
        """Retrieve the top-k passages and quote the answering sentence, or abstain.

        ``history``: the conversation's earlier questions, oldest first. A question is then also read
        with them (``qa.conversation``) and the reading abstention is more confident of is answered;
        ``Answer.understood_as`` holds the contextual reading when it was kept.
        """
        if mode not in MODES:
            raise QuestionError(f"mode={mode!r}; expected one of {', '.join(repr(m) for m in MODES)}")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise QuestionError(f"k={k!r}; expected a whole number of passages, 1 or more")
        if isinstance(history, str) or not all(isinstance(h, str) for h in history):
            raise QuestionError("history must be a list of earlier questions (text), oldest first")
        cfg = self.config
        q, notice = clean_question(question, cfg.question.max_chars)
        answer = self._answer(q, k, mode, notice)
        earlier = [clean_question(h, cfg.question.max_chars)[0] for h in history if h.strip()]
        reading = conversation.contextual_reading(q, earlier, cfg.conversation)
        if reading is None or fold_spaces(reading) == fold_spaces(q):
            return answer
        contextual = self._answer(reading, k, mode, notice)
        if conversation.absent_term(conversation.new_terms(q, reading), self.words.uses) is not None:
            # "2023年呢?": the follow-up's own term is one the corpus never uses; declined as read
            return dataclasses.replace(contextual, question=q, quote=None, confidence=0.0, understood_as=reading)
        if not conversation.prefer_contextual(answer.confidence, contextual.confidence, q, cfg.conversation):
            return answer
        # the follow-up's own words must be the corpus's too: the earlier turns' words fill in, not vouch
        tr = self.retriever.translation(q)
        own = 1.0 if tr is not None and not tr[2] else self.abstainer.confidence(q, tr)  # "What about 2019?"
        conf = min(contextual.confidence, own)
        quote = contextual.quote if conf >= cfg.abstain.threshold else None
        return dataclasses.replace(contextual, question=q, quote=quote, confidence=conf, understood_as=reading)

    def ranked(self, q: str, k: int, mode: str) -> tuple[Query, np.ndarray, np.ndarray]:
        """One cleaned question's query and its passage rows and scores, best first, as ``ask`` ranks
        them: the top ``max(k, rerank.depth)``, reranked in hybrid mode (``scripts/fit_abstain.py``
        reads abstention's evidence from them)."""
        depth = max(k, self.config.rerank.depth)
        query = self.retriever.query(q, mode)
        ids, scores = self.retriever.search(query, depth, mode)
        if mode == "hybrid":
            ids, scores = self.reranker.rerank(query.lexical, ids, scores, query.vector)
        return query, ids[:depth], scores[:depth]

    def _answer(self, q: str, k: int, mode: str, notice: str | None) -> Answer:
        """The answer to one cleaned question as it stands."""
        cfg = self.config
        t0 = time.perf_counter()
        self.retriever.query_vector(q)  # timed alone as "encode"; query() below reads it from the cache
        t1 = time.perf_counter()
        query, ids, scores = self.ranked(q, k, mode)
        t2 = time.perf_counter()
        hits = tuple(Hit(self.passages[int(i)], float(s), r) for r, (i, s) in enumerate(zip(ids[:k], scores), 1))
        quote, conf = None, 0.0
        if hits:
            gap = self.abstainer.sentence_gap(ids[: cfg.rerank.depth], query.vector)
            conf = self.abstainer.confidence(q, query.translation, query.bm25 if query.translation is None else None,
                                             hits[0].passage.text, gap)
            if conf >= cfg.abstain.threshold:
                best = hits[0].passage
                quote = pick_quote(query.lexical, best.text, self._sentence_vectors(int(ids[0])), query.vector,
                                   best.title, cfg.quote, cfg.match, cfg.question.hmm_chars)
                doc = self.documents.get(best.doc_id)
                if doc is not None and doc.pages:
                    quote = replace(quote, page=doc.page_at(best.start + quote.start))
        t3 = time.perf_counter()
        timings = {"encode": (t1 - t0) * 1e3, "search": (t2 - t1) * 1e3, "answer": (t3 - t2) * 1e3}
        return Answer(q, hits, quote, mode, conf, notice, timings)

    def document(self, doc_id: str) -> Document:
        """The full cleaned document a passage cites."""
        try:
            return self.documents[doc_id]
        except KeyError:
            raise QuestionError(f"no document {doc_id!r} in this index") from None


class PipelineHolder:
    """The pipeline a server answers from, swapped whole once a new index is complete (after an upload
    or a removal). Every chat handler and API route reads ``.pipeline`` once per question, so a question
    is answered by one index from start to end; ``lock`` lets one update run at a time."""

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.lock = threading.Lock()

    @staticmethod
    def of(source: Pipeline | PipelineHolder) -> PipelineHolder:
        """``source`` itself when it is a holder, else a new holder of the pipeline ``source``."""
        return source if isinstance(source, PipelineHolder) else PipelineHolder(source)


def fold_spaces(text: str) -> str:
    """``text`` without spaces, to compare two readings of a question."""
    return "".join(text.split())


def _spec_name(encoder: str | Encoder) -> str:
    """The canonical name of an encoder or encoder spec."""
    return encoder.name if isinstance(encoder, Encoder) else encoder_name(encoder)


def is_stale(manifest: dict, corpus: str | Path) -> bool:
    """True when the corpus files differ from those the index was built from."""
    return current_hashes(corpus) != manifest["corpus"]["files"]
