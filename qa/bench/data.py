"""Bench data: the real passages the bench measures on, and the larger corpora made from them.

The real text is the external sets' dev documents (evals/drcd, evals/cmrc2018), with the
vectors of their eval indexes when those were built with the bench's encoder.

Sizes beyond the real passage count are synthesised: passage ``i`` is real passage
``i mod m`` (``m`` real passages in a fixed shuffled order); replica ``r = i div m`` of it
gets ``doc_id`` and ``id`` suffixed ``~r`` and its document is replicated likewise (same
text). Its vector is the real vector for ``r = 0`` and otherwise the real vector plus
i.i.d. Gaussian noise of standard deviation ``sigma`` per dimension, renormalised. Sizes at
or below ``m`` use the first ``size`` real passages with their real vectors. Sentence vectors are
made the same way, from the passage's vector, once per sentence of its text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import BenchError, QAError

SIGMA = 0.025  # per-dimension noise of replicated vectors: cosine to the original ~0.90 in 384-d
SEED = 1234
SOURCES = (  # name, docs, questions, prebuilt index of the docs with the default encoder
    ("drcd", "evals/drcd/dev.docs.jsonl", "evals/drcd/dev.questions.jsonl", "index/eval/drcd-dev.docs"),
    ("cmrc2018", "evals/cmrc2018/dev.docs.jsonl", "evals/cmrc2018/dev.questions.jsonl", "index/eval/cmrc2018-dev.docs"),
)


@dataclass
class RealData:
    """The real passages (shuffled, fixed seed), their vectors, documents and questions."""

    documents: list
    passages: list
    vectors: np.ndarray
    questions: list[str]
    encoder: str
    sources: list[str] = field(default_factory=list)


def load_real(settings, log: Callable[[str], None]) -> RealData:
    """Passages and vectors of the DRCD and CMRC dev sets.

    Vectors come from the eval index ``index/eval/NAME`` when it was built with
    ``settings.encoder`` (``python -m qa eval QUESTIONS --docs DOCS`` builds it); otherwise the
    docs are ingested, split and embedded here with the product's functions.
    """
    from .. import store
    from ..build import embed_text
    from ..encode import encoder_name, load_encoder
    from ..evaluate import load_questions
    from ..ingest import load_corpus
    from ..schema import Document, Passage
    from ..search import DenseIndex
    from ..config import SplitConfig
    from ..split import split_documents

    name = encoder_name(settings.encoder)
    docs, passages, vectors, questions, used = [], [], [], [], []
    enc = None
    for src, docs_path, q_path, prebuilt in SOURCES:
        docs_path, q_path = settings.index_root / docs_path, settings.index_root / q_path
        if not docs_path.is_file() or not q_path.is_file():
            raise BenchError(f"real text {docs_path} or {q_path.name} is missing; the bench needs the eval sets "
                             "in evals/ (see evals/DATASETS.md)")
        index = settings.index_root / prebuilt
        try:
            manifest = store.read_manifest(index, any_version=True)
            reuse = manifest["encoder"]["name"] == name
        except QAError:
            reuse = False
        if reuse:
            build_dir = store.verify_files(index, manifest, deep=False)
            src_docs = store.read_documents(build_dir / "documents.jsonl")
            src_passages, _ = store.read_passages(build_dir / "passages.jsonl", {d.doc_id: d for d in src_docs})
            src_vectors = DenseIndex.load(build_dir / "dense.faiss").vectors()
            how = f"vectors from {index.relative_to(settings.index_root)}"
        else:
            src_docs = load_corpus(docs_path).documents
            src_passages = split_documents(src_docs, SplitConfig())
            enc = enc or load_encoder(settings.encoder)
            log(f"real text: embedding {len(src_passages)} {src} passages with {name} (no eval index built with it"
                f" at {index}; python -m qa eval {q_path} --docs {docs_path} builds one)")
            src_vectors = enc.encode([embed_text(p, True) for p in src_passages], "passage")
            how = f"embedded here with {name}"
        used.append(f"{src} `{docs_path.relative_to(settings.index_root)}` ({len(src_passages):,} passages, {how})")
        prefix = f"{src}:"
        for d in src_docs:
            docs.append(Document(prefix + d.doc_id, d.text, d.title, d.date, d.source, d.encoding, d.blocks, d.dropped))
        for q in src_passages:
            passages.append(Passage(prefix + q.id, prefix + q.doc_id, q.text, q.start, q.end, q.title, q.paragraph,
                                    q.heading))
        vectors.append(src_vectors)
        questions.extend(q.question for q in load_questions(q_path).questions)
    rng = np.random.default_rng(settings.seed)
    order = rng.permutation(len(passages))[: settings.max_real or None]
    keep = {passages[i].doc_id for i in order}
    qs = list(dict.fromkeys(questions))  # distinct questions only: the query cache must never hit
    qs = [qs[i] for i in rng.permutation(len(qs))]
    return RealData([d for d in docs if d.doc_id in keep], [passages[i] for i in order],
                    np.concatenate(vectors)[order], qs, name, used)


def synthesize(real: RealData, n: int, sigma: float = SIGMA, seed: int = SEED) -> tuple[list, list, np.ndarray]:
    """``n`` passages, their documents and vectors, replicated from the real ones (module docstring)."""
    from ..schema import Document, Passage

    m = len(real.passages)
    if m == 0:
        raise BenchError("no real passages to replicate")
    by_id = {d.doc_id: d for d in real.documents}
    rng = np.random.default_rng(seed)
    vectors = np.empty((n, real.vectors.shape[1]), dtype=np.float32)
    passages, documents = [], []
    for r in range(math.ceil(n / m)):
        count = min(m, n - r * m)
        block = real.passages[:count]
        if r == 0:
            passages.extend(block)
            documents.extend(by_id[i] for i in dict.fromkeys(p.doc_id for p in block))
            vectors[:count] = real.vectors[:count]
            continue
        tag = f"~{r}"
        passages.extend(Passage(p.id + tag, p.doc_id + tag, p.text, p.start, p.end, p.title, p.paragraph, p.heading)
                        for p in block)
        for doc_id in dict.fromkeys(p.doc_id for p in block):
            d = by_id[doc_id]
            documents.append(Document(doc_id + tag, d.text, d.title, d.date, d.source, d.encoding, d.blocks, d.dropped))
        noisy = real.vectors[:count] + rng.standard_normal((count, vectors.shape[1]), dtype=np.float32) * sigma
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        vectors[r * m : r * m + count] = noisy
    return documents, passages, vectors


def synthesize_sentences(passages: list, vectors: np.ndarray, sigma: float = SIGMA, seed: int = SEED):
    """Sentence vectors for synthesised passages: each passage's vector plus noise, once per sentence of
    its text. They cost what real ones would (rows, disk, reads per question); their cosines mean nothing."""
    from ..search import SentenceVectors
    from ..split import quote_spans

    per_text: dict[str, int] = {}
    counts = np.array([per_text.get(p.text) or per_text.setdefault(p.text, len(quote_spans(p.text)))
                       for p in passages], dtype=np.int64)
    rows = np.repeat(np.arange(len(passages)), counts)
    out = np.empty((len(rows), vectors.shape[1]), dtype=np.float16)
    rng = np.random.default_rng(seed + 1)
    for s in range(0, len(rows), 1 << 18):
        v = vectors[rows[s : s + (1 << 18)]]
        v = v + rng.standard_normal(v.shape, dtype=np.float32) * sigma
        out[s : s + len(v)] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return SentenceVectors.build(out, counts)


def synthesize_extras(passages: list, vectors: np.ndarray, sigma: float = SIGMA, seed: int = SEED):
    """The synthesised passages' sentence vectors (``synthesize_sentences``) and character pairs
    (``abstain.corpus_grams``), as a build stores them, with the seconds each took:
    (sentences, sentences_s, grams, grams_s)."""
    from ..abstain import corpus_grams

    t0 = time.perf_counter()
    sentences = synthesize_sentences(passages, vectors, sigma, seed)
    sentences_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    grams = corpus_grams(passages)
    return sentences, sentences_s, grams, time.perf_counter() - t0
