"""Folder store: the index as a folder of FAISS, bm25s and JSON files (``qa.store``), the default.

The ``Store`` that ``--index DIR`` names. Everything is loaded into the serving process (sentence
vectors stay on disk and are read a few rows at a time); a build writes a new build folder and
switches ``manifest.json`` to it atomically.
"""

from __future__ import annotations

from collections import Counter
from contextlib import AbstractContextManager
from pathlib import Path

from . import store
from .config import IndexConfig
from .errors import IndexWriteError
from .schema import Document
from .search import DenseIndex, LexicalIndex, SentenceVectors
from .stores import Built, IndexData, Progress, Reusable, Store, Written


class FolderStore(Store):
    """An index folder (``qa.store`` knows its file names)."""

    def __init__(self, path: str | Path):
        self.location = self.path = Path(path)

    def read_manifest(self, any_version: bool = False) -> dict:
        return store.read_manifest(self.path, any_version)

    def read_index(self, manifest: dict) -> IndexData:
        return store.read_index(self.path, manifest)

    def read_catalog(self, manifest: dict) -> tuple[list[Document], Counter]:
        return store.read_catalog(self.path, manifest)

    def read_extracted(self, read_settings: dict) -> dict[str, tuple[str, Document, list[str]]]:
        return store.read_extracted(self.path, read_settings)

    def read_reusable(self, wanted: set[str]) -> Reusable | None:
        """Every vector of the current build (``store.read_reusable``), whatever is ``wanted``."""
        return store.read_reusable(self.path)

    def building(self) -> AbstractContextManager[None]:
        return store.build_lock(self.path)

    def write(self, built: Built, config: IndexConfig, progress: Progress | None = None) -> Written:
        """Index the vectors (FAISS), the sentence vectors and the passages' words (bm25s) and write
        them as a new build folder (``store.write_build``)."""
        if built.shard != (1, 1) or len(built.rows) != len(built.passages):
            raise IndexWriteError(f"--shard {built.shard[0]}/{built.shard[1]} writes into a Milvus index; an "
                                  f"index folder is built on one machine: drop --shard, or pass --index milvus:…")
        dense = DenseIndex.build(built.vectors, config.exact_limit, config.ivf_target_recall)
        sent = SentenceVectors.build(built.sentence_vectors, built.sentence_counts)
        lexical = LexicalIndex.build([p.text for p in built.passages], config.bm25_k1, config.bm25_b)
        manifest = store.write_build(self.path, built.documents, built.passages, built.vhashes, dense, lexical, sent,
                                     built.settings, built.grams)
        data = IndexData(built.documents, built.passages, built.vhashes, dense, lexical, sent, built.grams)
        return Written(data, manifest)

    def corpus_path(self, manifest: dict) -> Path | None:
        return store.corpus_path(manifest, self.path)

    def rebuild_command(self, manifest: dict | None = None) -> str:
        return store.rebuild_command(self.path, manifest)

    def feedback_path(self) -> Path:
        return store.feedback_path(self.location)
