"""Build: read, clean, split, embed and index a corpus, and write it through the store.

What a build embeds (``embed_text``: a passage with its title and heading; its sentences as they
are) is hashed with the encoder's name (``vhash``), so ``embed_reusing`` embeds only text that the
current index does not already hold (``previous_vectors``). The index is written through its store
(``qa.stores``): a folder, or Milvus, where N machines may each embed a share (``--shard I/N``).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .abstain import corpus_grams
from .config import IndexConfig, ReadConfig, SplitConfig
from .encode import Encoder
from .errors import EmptyCorpusError, EncoderError
from .index_spec import open_store
from .ingest import READ_SUFFIXES, load_corpus
from .schema import Passage
from .split import quote_spans, split_documents
from .stores import Built, IndexData, Progress, Store, shard_of

@dataclass
class BuildReport:
    """What a build did: counts (of its shard's passages, in a parallel build), what it reused, and
    what it skipped or warned about."""

    documents: int = 0
    passages: int = 0
    embedded: int = 0
    reused: int = 0
    sentences: int = 0
    sentences_embedded: int = 0
    seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    missing: tuple[int, ...] = ()  # shards of a parallel build still to finish (the index is live once none are)


def embed_text(p: Passage, with_title: bool) -> str:
    """The text a passage is embedded as: its title and heading, then the passage."""
    if not with_title:
        return p.text
    head = " ".join(x for x in (p.title, p.heading) if x)
    return f"{head}\n{p.text}" if head else p.text


def embed_sentences(p: Passage) -> list[str]:
    """A passage's sentences as embedded (``split.quote_spans``), in its ``SentenceVectors`` row order."""
    return [p.text[a:b] for a, b in quote_spans(p.text)]


def embed_settings(with_title: bool) -> dict:
    """The manifest's ``embed`` entry: what ``embed_text`` put into the embedded text."""
    return {"title": with_title, "fold": "opencc-t2s+nfkc+lower"}


def vhash(encoder: str, text: str) -> str:
    """Content hash of what gets embedded, so unchanged passages are never re-embedded."""
    return hashlib.sha1(f"{encoder}\x00{text}".encode()).hexdigest()[:20]


def embed_reusing(enc: Encoder, texts: list[str], vhashes: list[str], cache: dict[str, np.ndarray],
                   progress: Callable[[str, int, int], None] | None) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of ``texts`` (as passages), from ``cache`` where their hash (``vhash``) is in it; a text
    that occurs several times is embedded once. Returns (vectors, which rows were embedded now)."""
    vectors = np.zeros((len(texts), enc.dim), dtype=np.float32)
    fresh = np.array([h not in cache for h in vhashes], dtype=bool)
    first: dict[str, int] = {}
    for i, h in enumerate(vhashes):
        if h in cache:
            vectors[i] = cache[h]
        else:
            first.setdefault(h, i)
    todo = list(first.values())
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress("embed", done, len(todo))

    if todo:
        vectors[todo] = enc.encode([texts[i] for i in todo], "passage", progress=tick)
        for i in np.flatnonzero(fresh):
            vectors[i] = vectors[first[vhashes[i]]]
    return vectors, fresh


def previous_vectors(target: Store, enc: Encoder, wanted: set[str]) -> dict[str, np.ndarray]:
    """Vectors of the current index (passages and sentences) keyed by embedding hash, when it used the
    same encoder (``Store.read_reusable``: the folder store reads only files that pass their checksum);
    an index of an older format gives its passage vectors. Rows that are not finite are left out."""
    old = target.read_reusable(wanted)
    if old is None or old.encoder.get("name") != enc.name or old.encoder.get("dim") != enc.dim:
        return {}
    cache = dict(zip(old.vhashes, old.vectors))
    if old.passages is not None:
        texts = [t for p in old.passages for t in embed_sentences(p)]
        if len(texts) == len(old.sentence_vectors):  # sentences cut as they are now
            cache.update(zip((vhash(enc.name, t) for t in texts), old.sentence_vectors))
    return {h: v for h, v in cache.items() if np.isfinite(v).all()}


def build_index(corpus: str | Path, index: str | Path | Store, enc: Encoder, split: SplitConfig = SplitConfig(),
                config: IndexConfig = IndexConfig(), progress: Progress | None = None,
                read: ReadConfig = ReadConfig(), shard: tuple[int, int] = (1, 1),
                reuse: str | Path | Store | None = None) -> tuple[IndexData | None, dict | None, BuildReport]:
    """Read (``read``: PDF, Word and web pages), clean, split, embed and index ``corpus``; write it
    atomically to ``index`` (a folder, ``milvus:…``, or a ``Store``).

    ``shard`` (I, N): embed and write only the passages and documents of share I (``shard_of``); the
    last of the N builds to finish makes the index live (Milvus only). ``reuse``: another index built with
    the same encoder whose vectors are taken too (a folder index moved into Milvus is not embedded again).
    Returns what was written (without reading it back; None for a parallel build) and the manifest
    (None while shards are missing), and the report.
    """
    t0 = time.perf_counter()
    target = index if isinstance(index, Store) else open_store(index)
    read_settings = read.text_settings()
    ingest = load_corpus(corpus, read=read, progress=progress, reuse=target.read_extracted(read_settings))
    report = BuildReport(skipped=ingest.skipped, warnings=ingest.warnings)
    if not ingest.documents:
        why = "; ".join(f"{n}: {r}" for n, r in ingest.skipped[:5]) or f"no {', '.join(READ_SUFFIXES)} files"
        raise EmptyCorpusError(f"nothing to index in {str(corpus)!r} ({why})")
    passages = split_documents(ingest.documents, split)
    texts = [embed_text(p, config.embed_title) for p in passages]
    sentences = [embed_sentences(p) for p in passages]
    vhashes = [vhash(enc.name, t) for t in texts]
    sentence_hashes = [[vhash(enc.name, t) for t in ss] for ss in sentences]
    sentence_vhashes = [h for hs in sentence_hashes for h in hs]
    mine = np.arange(len(passages)) if shard[1] == 1 else \
        np.array([r for r, p in enumerate(passages) if shard_of(p.id, shard[1]) == shard[0]], dtype=np.int64)
    todo = [texts[r] for r in mine] + [t for r in mine for t in sentences[r]]
    todo_hashes = [vhashes[r] for r in mine] + [h for r in mine for h in sentence_hashes[r]]
    n = len(mine)
    with target.building():
        wanted = set(todo_hashes)
        known = previous_vectors(target, enc, wanted)
        if reuse is not None:
            known |= previous_vectors(open_store(reuse), enc, wanted - set(known))
        vectors, fresh = embed_reusing(enc, todo, todo_hashes, known, progress)
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():  # never written: every score against them would be NaN
            raise EncoderError(f"encoder {enc.name!r} gave NaN or infinite vectors for {int(bad.sum())} of "
                               f"{len(todo)} texts (first: {todo[int(np.argmax(bad))][:40]!r}); check the model")
        if progress:
            progress("index", 0, 1)
        grams = None if len(passages) > config.char_grams_limit else \
            corpus_grams([passages[r] for r in mine], config.char_grams_limit)
        written = target.write(Built(ingest.documents, passages, vhashes, [len(ss) for ss in sentences],
                                     sentence_vhashes, mine, vectors[:n], vectors[n:], {
            "encoder": {"name": enc.name, "dim": enc.dim},
            "split": split.to_json(),
            "read": read_settings,
            "embed": embed_settings(config.embed_title),
            "corpus": {"path": str(Path(corpus).resolve()), "files": ingest.hashes},
            "skipped": [list(s) for s in ingest.skipped],
            "warnings": [list(w) for w in ingest.warnings],
        }, grams, shard), config, progress)
        if progress:
            progress("index", 1, 1)
    report.documents, report.passages, report.sentences = len(ingest.documents), n, len(todo) - n
    report.embedded = int(fresh[:n].sum())
    report.reused, report.sentences_embedded = n - report.embedded, int(fresh[n:].sum())
    report.missing = written.missing
    report.seconds = time.perf_counter() - t0
    return written.data, written.manifest, report
