"""Bench measurement helpers: thread pinning, latency summaries, peak memory, bytes on disk,
and running one measurement in a fresh process."""

from __future__ import annotations

import os
import pickle
import resource
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository: app.py, evals/, index/eval/


def set_threads(threads: int) -> dict:
    """Pin every thread pool the bench touches to ``threads``; return what was set."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import faiss

    from ..search import SEARCH_THREADS

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


def ms_since(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


def in_child(fn: Callable, *args):
    """Run ``fn(*args)`` in a freshly spawned process and return its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


def load_pickle(path: Path):
    with open(path, "rb") as fh:
        return pickle.load(fh)
