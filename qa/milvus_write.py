"""Milvus write: the collections of one build in Milvus, created, filled and recorded (``qa.milvus_store``).

``MilvusWriter`` creates a build's four collections (schemas that Milvus Lite and a server both
read), inserts one shard's passages, sentences, documents and meta rows in batches, flushes them,
and keeps the ``NAME_builds`` record of which shards of which build are done.

Texts longer than a VARCHAR holds (65,535 bytes) are stored in pieces of ``PIECE`` characters: a
document record, a shard's words, its character pairs (base64) and the manifest.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator

import numpy as np

from .config import IndexConfig
from .milvus_search import LITE_ANALYZER, SERVER_ANALYZER, join_words
from .search import row_offsets
from .stores import Built, Progress, chunks, document_record, shard_of
from .text import tokenize

PIECE = 16_000  # characters of one stored piece of text: at most 64,000 bytes of UTF-8
BATCH = 256  # rows an insert request carries
MAX_WORDS_BYTES = 65_000  # the words of one passage (a VARCHAR); a longer passage keeps its first words
BLOB_FIELDS = ["name", "part", "data"]
_UNIT = [1.0, 0.0]  # the 2-d vector of rows that hold no vector (Milvus wants one in every collection)


def blob_rows(name: str, text: str, shard: int) -> Iterator[dict]:
    """The rows that store ``text`` under ``name``: one per ``PIECE`` characters."""
    for part, piece in enumerate(chunks(text, PIECE)):
        yield {"key": f"{name}/{part}", "name": name, "part": part, "data": piece, "shard": shard, "v": _UNIT}


def words_of(tokens: list[str]) -> str:
    """A passage's BM25 words as stored (``milvus_search.bm25_words``), cut to fit a VARCHAR."""
    words = join_words(tokens)
    raw = words.encode("utf-8")
    return words if len(raw) <= MAX_WORDS_BYTES else raw[:MAX_WORDS_BYTES].decode("utf-8", "ignore").rsplit(" ", 1)[0]


class MilvusWriter:
    """Writes build ``build`` of a ``MilvusStore`` (``store``)."""

    def __init__(self, store, build: str, config: IndexConfig):
        self.store, self.client, self.build, self.config = store, store.client, build, config
        self.builds = f"{store.name}_builds"

    def name(self, kind: str) -> str:
        """A collection of this build."""
        return self.store.collection(kind, self.build)

    # ---- collections -------------------------------------------------------

    def create(self, dim: int) -> None:
        """Create this build's collections (and the builds record) where they are missing."""
        from pymilvus import DataType, Function, FunctionType

        def schema(vector_dim: int):
            s = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("id", DataType.INT64, is_primary=True)
            s.add_field("vector", DataType.FLOAT_VECTOR, dim=vector_dim)
            return s

        def blobs():
            s = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field("key", DataType.VARCHAR, is_primary=True, max_length=512)
            s.add_field("name", DataType.VARCHAR, max_length=512)
            s.add_field("part", DataType.INT64)
            s.add_field("data", DataType.VARCHAR, max_length=65_535)
            s.add_field("shard", DataType.INT64)
            s.add_field("v", DataType.FLOAT_VECTOR, dim=2)
            return s

        passages = schema(dim)
        passages.add_field("words", DataType.VARCHAR, max_length=65_535, enable_analyzer=True,
                           analyzer_params=LITE_ANALYZER if self.store.lite else SERVER_ANALYZER)
        passages.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        passages.add_field("vhash", DataType.VARCHAR, max_length=64)
        passages.add_field("shard", DataType.INT64)
        passages.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["words"],
                                       output_field_names=["sparse"]))
        sentences = schema(dim)
        sentences.add_field("passage", DataType.INT64)
        sentences.add_field("vhash", DataType.VARCHAR, max_length=64)
        sentences.add_field("shard", DataType.INT64)
        bm25 = {"bm25_k1": self.config.bm25_k1, "bm25_b": self.config.bm25_b}
        plans = {self.name("passages"): (passages, [("vector", "FLAT" if self.store.lite else "AUTOINDEX", "IP", {}),
                                                    ("sparse", "SPARSE_INVERTED_INDEX", "BM25", {**bm25, "params": bm25})]),
                 self.name("sentences"): (sentences, [("vector", "FLAT", "IP", {})]),
                 self.name("documents"): (blobs(), [("v", "FLAT", "IP", {})]),
                 self.name("meta"): (blobs(), [("v", "FLAT", "IP", {})]),
                 self.builds: (blobs(), [("v", "FLAT", "IP", {})])}
        for name, (s, indexes) in plans.items():
            params = self.client.prepare_index_params()
            for field, kind, metric, extra in indexes:
                params.add_index(field_name=field, index_type=kind, metric_type=metric, params=extra)
            try:  # another shard may create them at the same moment: what exists afterwards counts
                if not self.client.has_collection(name):
                    self.client.create_collection(name, schema=s, consistency_level="Strong"
                                                  if name == self.builds else "Bounded")
                if not self.client.list_indexes(name):
                    self.client.create_index(name, params, sync=False)  # of an empty collection: never wait
            except Exception:  # noqa: BLE001 - raised again below unless the other shard's attempt succeeded
                if not self.client.has_collection(name) or len(self.client.list_indexes(name)) < len(indexes):
                    raise
            self.store.load(name)

    # ---- the record of builds and shards -------------------------------------

    def mark(self, shard: int, shards: int, state: str) -> None:
        """Record that shard ``shard`` of ``shards`` of this build is ``started`` or ``done``."""
        data = json.dumps({"shards": shards, "state": state, "time": time.time()})
        self.client.upsert(self.builds, [{"key": f"{self.build}/{shard}", "name": self.build, "part": shard,
                                          "data": data, "shard": shards, "v": _UNIT}])

    def marks(self) -> dict[str, tuple[float, bool, int]]:
        """{build: (when its first shard started, whether every shard is done, how many shards)}."""
        if not self.client.has_collection(self.builds):
            return {}
        self.store.load(self.builds)
        seen: dict[str, list[dict]] = {}
        for row in self.store.iterate(self.builds, BLOB_FIELDS):
            seen.setdefault(row["name"], []).append(json.loads(row["data"]))
        out = {}
        for build, states in seen.items():
            done = {s.get("state") for s in states} == {"done"} and len(states) >= states[0].get("shards", 1)
            out[build] = (min(s.get("time", 0.0) for s in states), done, int(states[0].get("shards", 1)))
        return out

    def missing(self, shards: int) -> tuple[int, ...]:
        """The shards of this build that are not done yet."""
        rows = self.client.query(self.builds, filter=f'name == "{self.build}"', output_fields=BLOB_FIELDS,
                                 consistency_level="Strong")
        done = {r["part"] for r in rows if json.loads(r["data"]).get("state") == "done"}
        return tuple(i for i in range(1, shards + 1) if i not in done)

    def forget(self, builds: set[str]) -> None:
        """Remove dropped builds from the builds record."""
        for build in sorted(builds):
            self.client.delete(self.builds, filter=f'name == "{build}"')

    # ---- rows ----------------------------------------------------------------

    def delete_shard(self, shard: int) -> None:
        """Delete what an earlier run of this shard wrote into this build (it is written anew)."""
        for kind in ("passages", "sentences", "documents", "meta"):
            self.client.delete(self.name(kind), filter=f"shard == {shard}")

    def insert_rows(self, name: str, rows: Iterator[dict]) -> None:
        """Insert rows into a collection, ``BATCH`` at a time."""
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) == BATCH:
                self.client.insert(name, batch)
                batch = []
        if batch:
            self.client.insert(name, batch)

    def put(self, kind: str, name: str, text: str) -> None:
        """Store (or replace) a text under ``name`` in this build's ``documents`` or ``meta`` collection, and
        flush it. Stored as shard 0: no shard's rerun deletes it."""
        rows = list(blob_rows(name, text, 0))
        self.client.delete(self.name(kind), filter=f'name == "{name}"')
        self.client.upsert(self.name(kind), rows)
        self.client.flush(self.name(kind))

    def insert(self, built: Built, progress: Progress | None = None) -> set[str]:
        """Insert ``built``'s share: its passages (vectors and BM25 words), their sentences, its share of
        the documents (``shard_of`` their id), its words and character pairs; flush. Returns the words."""
        shard, shards = built.shard
        offsets = row_offsets(built.sentence_counts)
        vocab: set[str] = set()

        def passages() -> Iterator[dict]:
            for j, r in enumerate(built.rows):
                tokens = tokenize(built.passages[r].text)
                vocab.update(tokens)
                if progress and j % 1000 == 0:
                    progress("index", j, len(built.rows))
                yield {"id": int(r), "vector": built.vectors[j].tolist(), "words": words_of(tokens),
                       "vhash": built.vhashes[r], "shard": shard}

        def sentences() -> Iterator[dict]:
            j = 0
            for r in built.rows:
                for i in range(int(offsets[r]), int(offsets[r + 1])):
                    vector = built.sentence_vectors[j].astype(np.float16).astype(np.float32)  # as the folder stores
                    yield {"id": i, "passage": int(r), "vector": vector.tolist(),
                           "vhash": built.sentence_vhashes[i], "shard": shard}
                    j += 1

        def documents() -> Iterator[dict]:
            by_doc: dict[str, list[int]] = {}
            for r, p in enumerate(built.passages):
                by_doc.setdefault(p.doc_id, []).append(r)
            for no, d in enumerate(built.documents):
                if shards == 1 or shard_of(d.doc_id, shards) == shard:
                    rec = document_record(d) | {"no": no, "passages": [
                        [r, built.passages[r].id, built.passages[r].start, built.passages[r].end,
                         built.passages[r].paragraph, built.passages[r].heading, built.vhashes[r],
                         built.sentence_counts[r]] for r in by_doc.get(d.doc_id, [])]}
                    yield from blob_rows(f"doc/{no}", json.dumps(rec, ensure_ascii=False), shard)

        self.insert_rows(self.name("passages"), passages())
        self.insert_rows(self.name("sentences"), sentences())
        self.insert_rows(self.name("documents"), documents())
        self.insert_rows(self.name("meta"), blob_rows(f"vocab/{shard}", "\n".join(sorted(vocab)), shard))
        if built.grams is not None:
            codes = base64.b64encode(np.ascontiguousarray(built.grams.codes, dtype=np.uint64).tobytes()).decode()
            self.insert_rows(self.name("meta"), blob_rows(f"grams/{shard}", codes, shard))
        for kind in ("passages", "sentences", "documents", "meta"):
            self.client.flush(self.name(kind))
        return vocab
