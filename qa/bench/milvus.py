"""Bench › Milvus: the sizes section with the index in Milvus (``python -m qa bench --store milvus``).

The same synthesised passages, vectors and sentence vectors as the folder store's sizes, written
through ``MilvusStore.write`` (what ``python -m qa build --index milvus:…`` does after embedding) into
Milvus Lite (``--store milvus``: one ``.db`` folder per size under the work folder) or a Milvus server
(``--store milvus:http://HOST:19530``: collections named ``bench_nN``, dropped afterwards). The row
has the folder store's keys, so the tables compare the two: build time is the whole write (BM25 is
computed inside Milvus), disk is the Lite folder's size (a server's is not measured here), and the
dense search is checked against exact search as for the folder.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np

from .data import synthesize, synthesize_extras
from .measure import dir_bytes, load_pickle, ms_since, peak_rss_mb, set_threads
from .sizes import ann_check, synth_settings


def milvus_spec(store: str, work: Path, n: int) -> str:
    """The ``--index`` of size ``n``: ``milvus:WORK/indexes/nN.db`` (Lite) or ``milvus:URI/bench_nN``."""
    if store == "milvus":
        return f"milvus:{work.resolve() / 'indexes' / f'n{n}.db'}"
    return f"{store.rstrip('/')}/bench_n{n}"


def drop_milvus(spec: str) -> None:
    """Remove a bench index: the Lite folder, or the server's collections of that name."""
    from ..milvus_store import MilvusStore

    store = MilvusStore(spec)
    if store.lite:
        shutil.rmtree(store.uri, ignore_errors=True)
        return
    with store.errors():
        for alias in store.client.list_aliases().get("aliases", []):
            if alias == store.name:
                store.client.drop_alias(alias)
        for name in store.client.list_collections():
            if name.startswith(f"{store.name}_"):
                store.client.drop_collection(name)


def build_size_milvus(real_path: Path, n: int, spec: str, encoder: str, questions: list[str],
                      sigma: float, seed: int, threads: int) -> dict:
    """[child] Synthesise ``n`` passages, write them into Milvus, check its dense search."""
    set_threads(threads)
    from ..config import IndexConfig
    from ..encode import encoder_name, load_encoder
    from ..milvus_store import MilvusStore
    from ..stores import Built

    drop_milvus(spec)
    real = load_pickle(real_path)
    t0 = time.perf_counter()
    documents, passages, vectors = synthesize(real, n, sigma, seed)
    synth_s = ms_since(t0) / 1e3
    del real
    sentences, sentences_s, grams, grams_s = synthesize_extras(passages, vectors, sigma, seed)
    counts = np.diff(sentences.offsets).tolist()
    settings = {**synth_settings(encoder_name(encoder), int(vectors.shape[1]), "/no-corpus (synthesised by qa bench)"),
                "read": {}}
    built = Built(documents, passages, ["0" * 20] * n, counts, ["0" * 20] * int(sentences.offsets[-1]),
                  np.arange(n), vectors, sentences.vectors, settings, grams)
    store = MilvusStore(spec)
    t0 = time.perf_counter()
    data = store.write(built, IndexConfig()).data
    write_s = ms_since(t0) / 1e3
    manifest = store.read_manifest()
    disk = {"total": dir_bytes(Path(store.uri)) if store.lite else None}
    build_rss = peak_rss_mb()
    qv = load_encoder(encoder).encode(questions, "query")
    checked = ann_check(data.dense.search, qv, vectors)
    ann = {"index": f"{manifest['store']['engine']} {manifest['dense_index']}", "nlist": None, "nprobe": None,
           **checked, "exact_search_ms": checked["search_ms"] if manifest["dense_index"] == "FLAT" else None}
    return {"n": n, "store": spec, "documents": len(documents), "synth_s": synth_s, "dense_build_s": write_s,
            "bm25_build_s": None, "sentences_synth_s": sentences_s, "chargrams_build_s": grams_s,
            "unique_texts": len({p.text for p in passages}), "save_s": write_s, "disk_bytes": disk,
            "build_peak_rss_mb": build_rss, "ann": ann, "threads": threads, "noise_cos": None}
