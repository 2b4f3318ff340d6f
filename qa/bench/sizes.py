"""Bench › sizes: build the product's index at one size (synthesised beyond the real passages),
check its approximate search against exact search, serve real questions from it, and time the
baselines on the same data."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from ..search import recall_at
from .data import synthesize, synthesize_extras
from .measure import dir_bytes, load_pickle, ms_since, peak_rss_mb, set_threads, summarize


def save_index(index_dir: Path, documents: list, passages: list, dense, lexical, sentences, encoder_name: str,
               dim: int, grams=None) -> dict:
    """Write a synthesised index in the product's format (``store.write_build``, as ``Pipeline.build`` does)."""
    from .. import store

    if index_dir.exists():
        shutil.rmtree(index_dir)
    index_dir.mkdir(parents=True)
    return store.write_build(index_dir, documents, passages, ["0" * 20] * len(passages), dense, lexical, sentences,
                             synth_settings(encoder_name, dim, str(index_dir / "no-corpus (synthesised by qa bench)")),
                             grams)


def synth_settings(encoder_name: str, dim: int, corpus: str) -> dict:
    """The manifest settings of a synthesised index: the default split, embedded with titles, no corpus."""
    from ..build import embed_settings
    from ..config import SplitConfig

    return {"encoder": {"name": encoder_name, "dim": dim}, "split": SplitConfig().to_json(),
            "embed": embed_settings(True), "corpus": {"path": corpus, "files": {}}, "skipped": [], "warnings": []}


def ann_check(search, qv: np.ndarray, vectors: np.ndarray) -> dict:
    """``search(q, 50)`` (a dense search's ids, scores) against exact search over ``vectors``, on the real
    question vectors ``qv``: recall@10, recall@50 and the latency summary of one query at a time."""
    import faiss

    _, exact = faiss.knn(qv, vectors, 50, metric=faiss.METRIC_INNER_PRODUCT)
    got, lat = [], []
    for q in qv:
        t0 = time.perf_counter()
        ids, _ = search(q, 50)
        lat.append(ms_since(t0))
        got.append(np.pad(ids, (0, 50 - len(ids)), constant_values=-1))
    got = np.stack(got)
    return {"recall10": recall_at(got, exact, 10), "recall50": recall_at(got, exact, 50), "search_ms": summarize(lat)}


def build_size(real_path: Path, n: int, index_dir: Path, encoder: str, questions: list[str],
               sigma: float, seed: int, threads: int) -> dict:
    """[child] Synthesise ``n`` passages, build and save the product's indexes, check the ANN."""
    set_threads(threads)
    import faiss

    from ..encode import load_encoder
    from ..search import DenseIndex, LexicalIndex

    real = load_pickle(real_path)
    t0 = time.perf_counter()
    documents, passages, vectors = synthesize(real, n, sigma, seed)
    synth_s = ms_since(t0) / 1e3
    m = len(real.passages)
    del real
    c = min(2000, m, max(0, n - m))  # replica 1 of real row j sits at row m + j
    noise_cos = float(np.mean(np.sum(vectors[m : m + c] * vectors[:c], axis=1))) if c else None
    t0 = time.perf_counter()
    dense = DenseIndex.build(vectors)
    dense_s = ms_since(t0) / 1e3
    t0 = time.perf_counter()
    lexical = LexicalIndex.build([p.text for p in passages])
    bm25_s = ms_since(t0) / 1e3
    sentences, sentences_s, grams, grams_s = synthesize_extras(passages, vectors, sigma, seed)
    t0 = time.perf_counter()
    manifest = save_index(index_dir, documents, passages, dense, lexical, sentences, real_name(encoder),
                          vectors.shape[1], grams)
    del sentences
    save_s = ms_since(t0) / 1e3
    files = manifest["files"]
    disk = {"dense": files["dense.faiss"]["bytes"],
            "bm25": sum(v["bytes"] for k, v in files.items() if k.startswith("bm25/")),
            "documents": files["documents.jsonl"]["bytes"], "passages": files["passages.jsonl"]["bytes"],
            "sentences": sum(v["bytes"] for k, v in files.items() if k.startswith("sentences/"))}
    disk["total"] = dir_bytes(index_dir)
    build_rss = peak_rss_mb()
    # ANN quality and latency: the product's index against exact search, on real question vectors.
    enc = load_encoder(encoder)
    qv = enc.encode(questions, "query")
    kind = type(dense.index).__name__
    ann = {"index": kind, "nlist": getattr(dense.index, "nlist", None), "nprobe": getattr(dense.index, "nprobe", None)}
    ann.update(ann_check(dense.search, qv, vectors))
    if kind != "IndexFlatIP":  # what exact search would have cost at this size, one query at a time
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors)
        faiss.omp_set_num_threads(1)
        lat = []
        for q in qv[:30]:
            t0 = time.perf_counter()
            flat.search(q[None], 50)
            lat.append(ms_since(t0))
        ann["exact_search_ms"] = summarize(lat)
    else:
        ann["exact_search_ms"] = ann["search_ms"]
    return {"n": n, "documents": len(documents), "synth_s": synth_s, "dense_build_s": dense_s, "bm25_build_s": bm25_s,
            "sentences_synth_s": sentences_s, "chargrams_build_s": grams_s,
            "unique_texts": len({p.text for p in passages}), "save_s": save_s, "disk_bytes": disk,
            "build_peak_rss_mb": build_rss, "ann": ann, "threads": threads,
            "noise_cos": noise_cos}


def real_name(spec: str) -> str:
    from ..encode import encoder_name

    return encoder_name(spec)


def serve_size(index_dir: Path | str, encoder: str, questions: list[str], warmup: list[str], threads: int) -> dict:
    """[child] Load the saved index (a folder or ``milvus:…``) as the app does and time ``Pipeline.ask``."""
    set_threads(threads)
    from ..pipeline import Pipeline

    t0 = time.perf_counter()
    p = Pipeline.load(index_dir, encoder)
    load_s = ms_since(t0) / 1e3
    t0 = time.perf_counter()
    p.warm()
    for q in warmup:
        p.ask(q)
    warm_s = ms_since(t0) / 1e3
    e2e, enc, dense, bm25, rest, search, answer = [], [], [], [], [], [], []
    answered = 0
    cpu = []
    for q in questions:
        c0, t0 = time.process_time(), time.perf_counter()
        a = p.ask(q, k=5, mode="hybrid")
        total = ms_since(t0)
        cpu.append((time.process_time() - c0) * 1e3)
        answered += not a.abstained
        qvec = p.retriever.query_vector(a.question)  # cached by ask: no encoding here
        t0 = time.perf_counter()
        p.dense.search(qvec, p.config.search.candidates)
        d = ms_since(t0)
        t0 = time.perf_counter()
        lexical_q = p.retriever.lexical_query(a.question, p.retriever.translation(a.question))
        p.lexical.score(lexical_q).top(p.config.search.candidates)
        b = ms_since(t0)
        e2e.append(total)
        enc.append(a.timings_ms["encode"])
        search.append(a.timings_ms["search"])
        answer.append(a.timings_ms["answer"])
        dense.append(d)
        bm25.append(b)
        rest.append(max(0.0, total - a.timings_ms["encode"] - d - b))
    return {"n": len(p.passages), "load_s": load_s, "warm_s": warm_s, "e2e_ms": summarize(e2e),
            "e2e_cpu_ms": summarize(cpu),
            "encode_ms": summarize(enc), "dense_ms": summarize(dense), "bm25_ms": summarize(bm25),
            "rest_ms": summarize(rest), "ask_search_ms": summarize(search), "ask_answer_ms": summarize(answer),
            "answered": answered, "queries": len(questions), "serve_peak_rss_mb": peak_rss_mb(),
            "dense_index": p.manifest.get("dense_index")}


def baselines_size(real_path: Path, n: int, questions: list[str], st_dir: str | None, bm25_limit: int,
                   sigma: float, seed: int) -> dict:
    """[child] rank_bm25 BM25Okapi and plain sentence-transformers + IndexFlatIP at size ``n``."""
    from ..text import tokenize

    real = load_pickle(real_path)
    out: dict = {"n": n}
    if n <= bm25_limit:
        from rank_bm25 import BM25Okapi

        m = len(real.passages)
        unique = [tokenize(p.text) or [""] for p in real.passages[: min(n, m)]]
        corpus = [unique[i % m] for i in range(n)]  # replicated token lists, as for the product's BM25
        t0 = time.perf_counter()
        bm = BM25Okapi(corpus)
        build_s = ms_since(t0) / 1e3
        lat = []
        for q in questions:
            t0 = time.perf_counter()
            scores = bm.get_scores(tokenize(q))
            np.argpartition(-scores, 10)[:10]
            lat.append(ms_since(t0))
        out["rank_bm25"] = {"build_s": build_s, "query_ms": summarize(lat), "peak_rss_mb": peak_rss_mb()}
        del bm, corpus
    else:
        out["rank_bm25"] = {"skipped": f"above --baseline-limit {bm25_limit}: BM25Okapi keeps one Python dict "
                                       "per passage and scores a query with a Python loop over all of them"}
    if st_dir:
        import faiss
        from sentence_transformers import SentenceTransformer

        _, _, vectors = synthesize(real, n, sigma, seed)
        del real
        model = SentenceTransformer(st_dir, device="cpu")
        t0 = time.perf_counter()
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        build_s = ms_since(t0) / 1e3
        model.encode(questions[:2], prompt="query: ")
        lat, enc = [], []
        for q in questions:
            t0 = time.perf_counter()
            v = model.encode([q], prompt="query: ", normalize_embeddings=True)
            e = ms_since(t0)
            index.search(v, 10)
            lat.append(ms_since(t0))
            enc.append(e)
        out["st_flat"] = {"build_s": build_s, "query_ms": summarize(lat), "encode_ms": summarize(enc),
                          "faiss_threads": faiss.omp_get_max_threads(), "peak_rss_mb": peak_rss_mb()}
    else:
        out["st_flat"] = {"skipped": "no st: encoder given (--encoders st:DIR) and none exported"}
    return out
