"""Pipeline: the one way in. Build an index from a corpus, load it, ask it questions.

>>> from qa import Pipeline
>>> p = Pipeline.open("corpus", "index")            # builds on first use
>>> a = p.ask("苏州是什么时候获批创建区块链发展先导区的？", k=5)
>>> a.quote.text                                     # doctest: +SKIP
'2021年11月,工信部正式复函,支持苏州市创建区块链发展先导区。'
"""

from __future__ import annotations

import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from . import store
from .answer import (
    COVERAGE_DEPTH,
    AbstainConfig,
    CorpusWords,
    confidence,
    corpus_grams,
    content_words,
    coverage,
    missing_concepts,
    pick_quote,
    unstated_attribute,
)
from .encode import (
    Encoder,
    embed_reusing,
    embed_sentences,
    embed_settings,
    embed_text,
    encoder_name,
    load_encoder,
    previous_vectors,
    vhash,
)
from .errors import (
    CorpusError,
    EncoderError,
    IndexCorruptError,
    IndexMismatchError,
    IndexMissingError,
    IndexOutdatedError,
    IndexWriteError,
    QuestionError,
)
from .ingest import IngestReport, load_corpus
from .rerank import (
    best_sentence_overlap,
    number_share,
    question_grams,
    question_numbers,
    question_trigrams,
    sentence_support,
)
from .schema import MODES, Answer, Document, Hit, Passage
from .search import DenseIndex, LexicalIndex, SentenceVectors, TitleIndex, fuse_scores, minmax, top_k
from .split import SplitConfig, split_documents
from .text import CharGrams, has_cjk
from .translate import translate

MAX_QUESTION_CHARS = 200  # longer than any question of the eval sets (125); bounds what one question costs
MIN_GAP_PASSAGES = 10  # abstention check (5) compares the best passage with at least this many
_UNSET = object()  # "translation not computed yet" (None means "not an English-over-Chinese question")
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SearchConfig:
    """Query-time settings: dense weight of the fusion, candidates per retriever, the weights of
    the best-sentence overlap, the best sentence cosine and the share of the question's numbers
    added to the top ``rerank_depth`` fused scores, and the bonus of the passages of a document
    the question names by its title (``Pipeline.rerank``)."""

    # Hybrid hit@1 by dense weight, 0.3 / 0.4 / 0.5 / 0.6 / 0.7 (all else as now): DRCD dev 0.955 / 0.956 /
    # 0.958 / 0.959 / 0.957, CMRC dev 0.978 / 0.978 / 0.978 / 0.978 / 0.979, articles set 0.910 / 0.921 /
    # 0.921 / 0.921 / 0.921 (0.55: 0.910); MRR@10 DRCD 0.973 / 0.974 / 0.975 / 0.975 / 0.974.
    dense_weight: float = 0.5
    candidates: int = 50
    sentence_weight: float = 1.0
    # Weight of each candidate's best sentence cosine to the question (min-max over the top ``rerank_depth``).
    # Hybrid hit@1 (MRR@10), 0 -> 0.2 / 0.3 / 0.5: DRCD dev 0.958 (0.975) -> 0.963 / 0.965 (0.979) / 0.966;
    # CMRC dev 0.979 (0.988) -> 0.982 / 0.983 (0.990) / 0.983; articles set 0.910 -> 0.933 / 0.933 / 0.921.
    sentence_dense_weight: float = 0.3
    rerank_depth: int = 20
    # Hybrid hit@1 / MRR@10, bonus 0 -> 0.1 / 0.2 / 0.3 / 0.5: CMRC dev 0.968 / 0.982 -> 0.975 / 0.977 / 0.978 /
    # 0.979 (MRR 0.986 / 0.987 / 0.988 / 0.988); DRCD dev 0.954 / 0.972 -> 0.955 / 0.954 / 0.954 / 0.953
    # (MRR 0.973 at 0.1-0.3); the articles set unchanged (its titles are headlines no question quotes).
    # Adding every passage of a named document to the candidates as well changed nothing.
    title_weight: float = 0.2
    # Weight of the share of the question's own numbers ("2020年7月", "1936年") that a top passage states
    # (``qa.rerank.number_share``). Hybrid hit@1, questions right of the answerable, 0 -> 0.1 / 0.2 / 0.3 / 0.5:
    # DRCD dev 3,399 -> 3,402 / 3,404 / 3,403 / 3,403 of 3,524 (MRR@10 0.979 -> 0.980); articles set 83 -> 83 /
    # 84 / 84 / 84 of 89; CMRC dev 3,163 of 3,219 at each; cross-dataset abstention unchanged.
    number_weight: float = 0.2
    abstain: AbstainConfig = field(default_factory=AbstainConfig)


@dataclass
class BuildReport:
    """What a build did: counts, what it reused, and what it skipped or warned about."""

    documents: int = 0
    passages: int = 0
    embedded: int = 0
    reused: int = 0
    sentences: int = 0
    sentences_embedded: int = 0
    seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)


def clean_question(question: str) -> tuple[str, str | None]:
    """Strip control characters and cap the length; return (question, notice or None)."""
    if not isinstance(question, str):
        raise QuestionError(f"question must be text, got {type(question).__name__}")
    given = len(question)
    question = question[: 4 * MAX_QUESTION_CHARS]  # room for the spaces cleaning collapses; the rest is never read
    q = question.encode("utf-8", "surrogateescape").decode("utf-8", "replace")  # bytes from a non-UTF-8 terminal
    q = "".join(" " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs") else c for c in q)
    q = " ".join(q.split())
    if not q:
        raise QuestionError("the question is empty; type a question about the documents")
    notice = None
    if len(q) > MAX_QUESTION_CHARS or given > len(question):
        notice = f"question truncated to its first {MAX_QUESTION_CHARS} of {given} characters"
        q = q[:MAX_QUESTION_CHARS]
    return q, notice


class Pipeline:
    """A loaded index plus its encoder: ``ask`` questions, look up documents."""

    def __init__(
        self,
        index_dir: Path,
        manifest: dict,
        documents: list[Document],
        passages: list[Passage],
        dense: DenseIndex,
        lexical: LexicalIndex,
        encoder: Encoder,
        sentences: SentenceVectors,
        config: SearchConfig = SearchConfig(),
        grams: CharGrams | None = None,
    ):
        self.index_dir = index_dir
        self.manifest = manifest
        self.documents = {d.doc_id: d for d in documents}
        self.passages = passages
        self.dense = dense
        self.lexical = lexical
        self.encoder = encoder
        self.sentences = sentences
        self.config = config
        self._qcache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.words = CorpusWords(passages, lexical.bm25.vocab_dict, grams)
        self.warnings: list[str] = []  # what the user should know about this index (e.g. a failed refresh)

    @cached_property
    def titles(self) -> TitleIndex:
        """The documents' titles as the reranker matches them, built on first use (loading stays fast)."""
        return TitleIndex((d.doc_id, d.title) for d in self.documents.values())

    # ---- building and loading -------------------------------------------------

    @classmethod
    def build(
        cls,
        corpus: str | Path = "corpus",
        index_dir: str | Path = "index",
        encoder: str | Encoder | None = None,
        split: SplitConfig = SplitConfig(),
        embed_title: bool = True,
        progress: Progress | None = None,
    ) -> tuple[Pipeline, BuildReport]:
        """Read, clean, split, embed and index a corpus; write it atomically to ``index_dir``."""
        t0 = time.perf_counter()
        index_dir = Path(index_dir)
        enc = encoder if isinstance(encoder, Encoder) else load_encoder(encoder)
        ingest: IngestReport = load_corpus(corpus)
        report = BuildReport(skipped=ingest.skipped, warnings=ingest.warnings)
        if not ingest.documents:
            why = "; ".join(f"{n}: {r}" for n, r in ingest.skipped[:5]) or "no .txt or .md files"
            raise CorpusError(f"nothing to index in {str(corpus)!r} ({why})")
        passages = split_documents(ingest.documents, split)
        texts = [embed_text(p, embed_title) for p in passages]
        sentences = [embed_sentences(p) for p in passages]
        texts += [t for ss in sentences for t in ss]
        vhashes = [vhash(enc.name, t) for t in texts]
        n = len(passages)
        with store.build_lock(index_dir):
            vectors, fresh = embed_reusing(enc, texts, vhashes, previous_vectors(index_dir, enc), progress)
            bad = ~np.isfinite(vectors).all(axis=1)
            if bad.any():  # never written: every score against them would be NaN
                raise EncoderError(f"encoder {enc.name!r} gave NaN or infinite vectors for {int(bad.sum())} of "
                                   f"{len(texts)} texts (first: {texts[int(np.argmax(bad))][:40]!r}); check the model")
            if progress:
                progress("index", 0, 1)
            dense = DenseIndex.build(vectors[:n])
            sent = SentenceVectors.build(vectors[n:], map(len, sentences))
            lexical = LexicalIndex.build([p.text for p in passages])
            grams = corpus_grams(passages)
            manifest = store.write_build(index_dir, ingest.documents, passages, vhashes[:n], dense, lexical, sent, {
                "encoder": {"name": enc.name, "dim": enc.dim},
                "split": split.to_json(),
                "embed": embed_settings(embed_title),
                "corpus": {"path": str(Path(corpus).resolve()), "files": ingest.hashes},
                "skipped": [list(s) for s in ingest.skipped],
                "warnings": [list(w) for w in ingest.warnings],
            }, grams)
            if progress:
                progress("index", 1, 1)
        report.documents, report.passages, report.sentences = len(ingest.documents), n, len(texts) - n
        report.embedded = int(fresh[:n].sum())
        report.reused, report.sentences_embedded = n - report.embedded, int(fresh[n:].sum())
        report.seconds = time.perf_counter() - t0
        # What was just written, without reading and hashing it back from disk.
        return cls(index_dir, manifest, ingest.documents, passages, dense, lexical, enc, sent, grams=grams), report

    @classmethod
    def load(cls, index_dir: str | Path = "index", encoder: str | Encoder | None = None) -> Pipeline:
        """Open a built index; the encoder must be the one it was built with."""
        index_dir = Path(index_dir)
        manifest = store.read_manifest(index_dir)
        built_with = manifest["encoder"]["name"]
        if encoder is None:
            encoder = built_with
        name = _spec_name(encoder)
        if name != built_with:
            raise IndexMismatchError(
                f"index {str(index_dir)!r} was built with encoder {built_with!r}, not {name!r}; "
                f"use --encoder {built_with} or rebuild: python -m qa build --index {index_dir} --encoder {name}"
            )
        build_dir = store.verify_files(index_dir, manifest)
        fix = f"rebuild with: {store.rebuild_command(index_dir, manifest)}"
        enc = encoder if isinstance(encoder, Encoder) else load_encoder(encoder)
        if enc.dim != manifest["encoder"]["dim"]:
            raise IndexMismatchError(
                f"encoder {name!r} gives {enc.dim}-d vectors but the index holds {manifest['encoder']['dim']}-d; rebuild it"
            )
        try:
            docs = store.read_documents(build_dir / "documents.jsonl")
            passages, _ = store.read_passages(build_dir / "passages.jsonl", {d.doc_id: d for d in docs})
            dense = DenseIndex.load(build_dir / "dense.faiss")
            lexical = LexicalIndex.load(build_dir / "bm25")
            sentences = SentenceVectors.load(build_dir / "sentences")
            grams_file = build_dir / CharGrams.FILE  # absent from indexes built before it was stored
            grams = CharGrams.load(grams_file) if grams_file.is_file() else None
        except (ValueError, KeyError, IndexError, TypeError, RuntimeError, OSError) as exc:
            raise IndexCorruptError(
                f"index {str(index_dir)!r} cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                f"{fix}"
            ) from None
        if not dense.size == sentences.size == len(passages):
            raise IndexCorruptError(
                f"index {str(index_dir)!r} holds {dense.size} passage vectors and the sentences of {sentences.size} "
                f"passages for {len(passages)} passages; {fix}"
            )
        return cls(index_dir, manifest, docs, passages, dense, lexical, enc, sentences, grams=grams)

    @classmethod
    def open(
        cls,
        corpus: str | Path | None = "corpus",
        index_dir: str | Path = "index",
        encoder: str | Encoder | None = None,
        progress: Progress | None = None,
    ) -> Pipeline:
        """Load ``index_dir``, building it first when it is missing or its corpus changed.

        A stale index is rebuilt with the encoder it was built with; asking for another
        encoder than the index's is an ``IndexMismatchError`` (switch encoders with
        ``build``). ``corpus=None`` means the corpus the index was built from (``corpus/`` for a
        new one): an index is refreshed without being told only from the folder it was built from
        (``store.corpus_path``), never from another that happens to have the same relative name.
        With that folder gone or unknown, the index is served as it is. An index of an older
        format is rebuilt the same way (its passage vectors are reused).
        """
        outdated = False
        try:
            manifest = store.read_manifest(Path(index_dir))
        except IndexMissingError:
            return cls.build("corpus" if corpus is None else corpus, index_dir, encoder, progress=progress)[0]
        except IndexOutdatedError:
            manifest, outdated = store.read_manifest(Path(index_dir), any_version=True), True
        if corpus is None:
            corpus = store.corpus_path(manifest, Path(index_dir))
            if corpus is None:
                return cls.load(index_dir, encoder)
        built_with = manifest["encoder"]["name"]
        if encoder is not None and _spec_name(encoder) != built_with:
            return cls.load(index_dir, encoder)  # raises the mismatch with its fix
        if Path(corpus).exists() and (outdated or is_stale(manifest, corpus)):  # rebuilt as it was built
            try:
                return cls.build(corpus, index_dir, encoder or built_with, split=SplitConfig.of_index(manifest),
                                 progress=progress)[0]
            except IndexWriteError as exc:
                if outdated:
                    raise
                served = cls.load(index_dir, encoder)  # the index as it was: still whole, still answers
                served.warnings.append(f"the corpus changed but the index could not be refreshed: {exc}; "
                                       f"answering from the index as it was")
                return served
        return cls.load(index_dir, encoder)

    # ---- asking --------------------------------------------------------------

    def query_vector(self, question: str) -> np.ndarray:
        """The (dim,) query embedding, cached for recently asked questions."""
        with self._lock:
            vec = self._qcache.get(question)
        if vec is None:
            vec = self.encoder.encode_query(question)
            with self._lock:
                self._qcache[question] = vec
                if len(self._qcache) > 2048:
                    self._qcache.popitem(last=False)
        return vec

    def warm(self) -> None:
        """Load what the first question would otherwise wait for (word lists, dictionary, model)."""
        for question in ("预热 warm-up", "warm up"):
            try:
                self.ask(question, k=1)
            except QuestionError:
                pass

    def translation(self, question: str) -> tuple[list[str], list[str], int] | None:
        """CC-CEDICT translation of an English question over a Chinese corpus, else None."""
        if has_cjk(question) or not self.words.cjk:
            return None
        return translate(question, self.words.present)

    def lexical_query(self, question: str, tr: tuple | None | object = _UNSET) -> str:
        """The question for BM25: with CC-CEDICT translations when it is English over a Chinese corpus."""
        tr = self.translation(question) if tr is _UNSET else tr
        return question if tr is None else " ".join(tr[0]) + " " + question

    def abstain_confidence(self, question: str, tr: tuple | None | object = _UNSET,
                           lex: np.ndarray | None = None, top: str | None = None,
                           sentence_gap: float | None = None) -> float:
        """How sure we are the corpus talks about what the question asks (see qa.answer).

        ``lex``: the BM25 scores of ``lexical_query(question)`` when already computed; ``top``: the
        text of the best passage found, for checks (4) and (6); ``sentence_gap``: ``sentence_gap`` of the
        passages found, for checks (5) and (6) (each check is skipped without its arguments).
        """
        tr = self.translation(question) if tr is _UNSET else tr
        if tr is None:
            words = content_words(question)
            share, name_missing, _ = missing_concepts(question, self.words.present, words)
            if name_missing or not words:
                conf = confidence(share, name_missing)
            else:
                lex = self.lexical.scores(question) if lex is None else lex
                ids, _ = top_k(lex, COVERAGE_DEPTH)
                texts = [self.passages[int(i)].text for i in ids]
                # a count or a person the corpus never mentions, else how much one passage holds
                unstated = unstated_attribute(question, self.words.present, texts)
                conf = confidence(share, True) if unstated else confidence(share, False, coverage(words, texts))
            support = None if top is None else sentence_support(question, top)
            return self.config.abstain.sentence_checks(conf, support, sentence_gap)
        _, missing, content = tr
        missing = [w for w in missing if not self.words.uses(w)]  # English words the corpus itself uses
        return confidence(len(missing) / content if content else 1.0, False)

    def retrieve(self, lexical_q: str, k: int, mode: str, qvec: np.ndarray,
                 lex: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k passage rows and scores for one mode (``lexical_q`` from ``lexical_query``;
        ``lex``: its BM25 scores, when already computed)."""
        n = self.config.candidates
        if mode == "dense":
            return self.dense.search(qvec, k)
        lex = self.lexical.scores(lexical_q) if lex is None else lex
        if mode == "bm25":
            return top_k(lex, k)
        d_ids, _ = self.dense.search(qvec, max(n, k))
        b_ids, _ = top_k(lex, max(n, k))
        cand = np.union1d(d_ids, b_ids)
        ids, fused = fuse_scores(cand, self.dense.vectors(cand) @ qvec, lex[cand], self.config.dense_weight)
        ids, fused = self.rerank(lexical_q, ids, fused, qvec)
        return ids[:k], fused[:k]

    def rerank(self, question: str, ids: np.ndarray, fused: np.ndarray,
               qvec: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Add ``sentence_weight * best_sentence_overlap`` and ``sentence_dense_weight`` times the
        min-max scaled best sentence cosine (to ``qvec``) and ``number_weight`` times the share of the
        question's numbers it states to the top ``rerank_depth`` fused scores, and ``title_weight`` to
        every candidate from a document the question names by its title.

        A passage whose single sentence holds most of the question's words (and repeats its
        phrases), or says what it asks in other words, beats one that scatters them over several
        sentences; "大沙地站共有几层?" is about the article 大沙地站, not 大沙东站, however alike
        their passages read.
        """
        cfg = self.config
        fused = fused.copy()
        top = min(len(ids), cfg.rerank_depth)
        if cfg.sentence_dense_weight and qvec is not None:
            fused[:top] += cfg.sentence_dense_weight * minmax(self.sentences.best(ids[:top], qvec))
        if cfg.sentence_weight:
            q_grams, q_trigrams = question_grams(question), question_trigrams(question)
            fused[:top] += cfg.sentence_weight * np.array(
                [best_sentence_overlap(q_grams, self.passages[int(i)].text, q_trigrams) for i in ids[:top]],
                dtype=np.float32)
        numbers = question_numbers(question) if cfg.number_weight else ()
        if numbers:
            fused[:top] += cfg.number_weight * np.array(
                [number_share(numbers, self.passages[int(i)].text) for i in ids[:top]], dtype=np.float32)
        named = self.titles.named(question) if cfg.title_weight else set()
        if named:
            fused += cfg.title_weight * np.array([self.passages[int(i)].doc_id in named for i in ids], dtype=np.float32)
        order = np.lexsort((ids, -fused))
        return ids[order], fused[order]

    def sentence_gap(self, ids: np.ndarray, qvec: np.ndarray) -> float | None:
        """How much closer to the question the first passage's best sentence is than the average
        passage's best sentence (cosines, over ``ids``); None for fewer than ``MIN_GAP_PASSAGES``."""
        if len(ids) < MIN_GAP_PASSAGES:
            return None
        best = self.sentences.best(ids, qvec)
        return float(best[0] - best.mean())

    def _sentence_vectors(self, row: int) -> Callable[[list[str]], np.ndarray]:
        """``pick_quote``'s embed function for passage ``row``: its stored sentence vectors."""
        def embed(sentences: list[str]) -> np.ndarray:
            stored = self.sentences.of(row)
            return stored if len(stored) == len(sentences) else self.encoder.encode(sentences, "passage")
        return embed

    def ask(self, question: str, k: int = 5, mode: str = "hybrid") -> Answer:
        """Retrieve the top-k passages and quote the answering sentence, or abstain."""
        if mode not in MODES:
            raise QuestionError(f"mode={mode!r}; expected one of {', '.join(repr(m) for m in MODES)}")
        if not isinstance(k, int) or k < 1:
            raise QuestionError(f"k={k!r}; expected a whole number of passages, 1 or more")
        q, notice = clean_question(question)
        t0 = time.perf_counter()
        qvec = self.query_vector(q)
        t1 = time.perf_counter()
        tr = self.translation(q)
        lexical_q = self.lexical_query(q, tr)
        lex = None if mode == "dense" else self.lexical.scores(lexical_q)  # abstention reuses them
        ids, scores = self.retrieve(lexical_q, max(k, self.config.rerank_depth), mode, qvec, lex)
        t2 = time.perf_counter()
        hits = tuple(Hit(self.passages[int(i)], float(s), r) for r, (i, s) in enumerate(zip(ids[:k], scores), 1))
        quote, conf = None, 0.0
        if hits:
            gap = self.sentence_gap(ids[: self.config.rerank_depth], qvec)
            conf = self.abstain_confidence(q, tr, lex if tr is None else None, hits[0].passage.text, gap)
            if conf >= self.config.abstain.threshold:
                quote = pick_quote(lexical_q, hits[0].passage.text, self._sentence_vectors(int(ids[0])), qvec,
                                   hits[0].passage.title)
        t3 = time.perf_counter()
        timings = {"encode": (t1 - t0) * 1e3, "search": (t2 - t1) * 1e3, "answer": (t3 - t2) * 1e3}
        return Answer(q, hits, quote, mode, conf, notice, timings)

    def document(self, doc_id: str) -> Document:
        """The full cleaned document a passage cites."""
        try:
            return self.documents[doc_id]
        except KeyError:
            raise QuestionError(f"no document {doc_id!r} in this index") from None


def _spec_name(encoder: str | Encoder) -> str:
    """The canonical name of an encoder or encoder spec."""
    return encoder.name if isinstance(encoder, Encoder) else encoder_name(encoder)


def is_stale(manifest: dict, corpus: str | Path) -> bool:
    """True when the corpus files differ from those the index was built from."""
    from .ingest import current_hashes

    return current_hashes(corpus) != manifest["corpus"]["files"]
