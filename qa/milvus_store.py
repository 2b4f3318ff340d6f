"""Milvus store: an index held in Milvus, embedded (Milvus Lite, a local file) or on a server.

``--index milvus:PATH.db`` is Milvus Lite, in the process that opens it (tests, one machine; one
process at a time); ``--index milvus:http://HOST:19530[/NAME]`` a Milvus server or cluster, which
many app processes and build machines share. NAME (default ``qa``) prefixes every collection.
One build B writes four collections of its own:

    NAME_passages_B    id (passage row), vector, words (``bm25_words``) with Milvus's BM25 function
                       into sparse, vhash (embedding hash), shard
    NAME_sentences_B   id (sentence row), passage, vector (rounded to float16, as the folder stores
                       them), vhash, shard
    NAME_documents_B   one JSON record a document, in pieces: text, blocks, metadata, its passages
    NAME_meta_B        the manifest, and each shard's words and character pairs (abstention)

The alias NAME points at the live build's meta collection, whose manifest names the build. A build
switches the alias only once every one of its collections is written and flushed, so a build killed
at any point leaves the previous one answering; the build before the live one is kept (processes
still serving it keep answering), older ones and killed builds' leftovers are dropped.

Parallel builds (``--shard I/N``): every machine reads and splits the whole corpus, then embeds and
writes only its share (``stores.shard_of``) into collections named by a digest of the corpus and the
settings, so all N agree on them without talking to each other. ``NAME_builds`` records which shards
are done; the one that finds all N done writes the manifest and switches the alias. A shard run
again deletes what it wrote before and writes it anew.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np

from .config import IndexConfig
from .errors import IndexCorruptError, IndexMismatchError, IndexMissingError, QAError
from .manifest import FORMAT, FORMAT_VERSION, corpus_path, rebuild_command
from .milvus_search import (LITE_ANALYZER, SERVER_ANALYZER, MilvusDense, MilvusLexical, MilvusSentences,
                            connect, milvus_errors)
from .milvus_write import BLOB_FIELDS, MilvusWriter
from .schema import Document, Passage
from .search import row_offsets
from .stores import Built, IndexData, Progress, Reusable, Store, Written, document_from_record, passage_of
from .text import CharGrams

KINDS = ("passages", "sentences", "documents", "meta")
STALE_HOURS = 24  # an unfinished build on a server is another machine's until this old; Lite has one process
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_BUILD = re.compile(r"[bs][0-9a-f]{6,40}")


def parse_milvus(spec: str) -> tuple[str, str]:
    """(uri, collection prefix) of ``milvus:PATH.db`` or ``milvus:http://HOST:PORT[/NAME]``."""
    rest = spec.removeprefix("milvus:")
    if rest.startswith(("http://", "https://", "tcp://")):
        scheme, _, tail = rest.partition("://")
        host, _, name = tail.partition("/")
        uri, name = f"{scheme}://{host}", name.strip("/") or "qa"
    elif rest.endswith(".db") and len(rest) > 3:
        uri, name = rest, "qa"
    else:
        raise QAError(f"--index {spec!r}: expected milvus:PATH.db (Milvus Lite, a local file) or "
                      f"milvus:http://HOST:19530[/NAME] (a Milvus server)")
    if not _NAME.fullmatch(name):
        raise QAError(f"--index {spec!r}: the name {name!r} must be letters, digits and _ (not starting with a "
                      f"digit), up to 64 of them")
    return uri, name


class MilvusStore(Store):
    """An index in Milvus (see the module docstring for its collections)."""

    def __init__(self, spec: str):
        self.location = spec
        self.uri, self.name = parse_milvus(spec)
        self.lite = self.uri.endswith(".db")
        self._client = None

    @property
    def client(self):
        """The process's ``MilvusClient`` for this address, connected on first use."""
        if self._client is None:
            self._client = connect(self.uri, self.location)
        return self._client

    def errors(self) -> AbstractContextManager[None]:
        """pymilvus's and grpc's errors as one ``IndexServiceError`` line."""
        return milvus_errors(self.location, self.uri)

    def feedback_path(self) -> Path:
        """Beside the Lite file (``PATH.feedback.jsonl``); for a server, ``feedback-NAME.jsonl`` here."""
        return Path(self.uri).with_suffix(".feedback.jsonl") if self.lite else Path(f"feedback-{self.name}.jsonl")

    def collection(self, kind: str, build: str) -> str:
        """The name of one of a build's collections."""
        return f"{self.name}_{kind}_{build}"

    # ---- reading -----------------------------------------------------------

    def read_manifest(self, any_version: bool = False) -> dict:
        with self.errors():
            if (self.lite and not Path(self.uri).is_dir()) or self.name not in self.client.list_aliases().get(
                    "aliases", []):  # a Lite folder is made only by a build
                raise IndexMissingError(f"no index in {self.location}; build one with: python -m qa build "
                                        f"--index {self.location}")
            meta = self.client.describe_alias(self.name)["collection_name"]
            self.load(meta)
            text = "".join(self.read_blob(meta, "manifest"))
        try:
            manifest = json.loads(text)
        except ValueError:
            manifest = None
        fix = f"rebuild with: {self.rebuild_command(manifest)}"
        if not isinstance(manifest, dict):
            raise IndexCorruptError(f"the manifest of {self.location} ({meta}) cannot be read; {fix}")
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise IndexMismatchError(f"index {self.location} has format {manifest.get('format')!r} "
                                     f"v{manifest.get('format_version')}, this version reads {FORMAT!r} "
                                     f"v{FORMAT_VERSION}; {fix}")
        try:
            ok = (isinstance(manifest["encoder"]["name"], str) and isinstance(manifest["encoder"]["dim"], int)
                  and isinstance(manifest["corpus"]["files"], dict) and isinstance(manifest["counts"], dict)
                  and _BUILD.fullmatch(str(manifest["build"])) is not None
                  and self.collection("meta", manifest["build"]) == meta)
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise IndexCorruptError(f"the manifest of {self.location} lacks required fields or names another "
                                    f"build than {meta}; {fix}")
        return manifest

    def read_index(self, manifest: dict) -> IndexData:
        build = manifest["build"]
        with self.errors():
            for kind in KINDS:
                self.load(self.collection(kind, build))
            docs, passages, vhashes, counts = self.read_documents(build, manifest)
            vocab: set[str] = set()
            codes = []
            for name, text in self.read_blobs(self.collection("meta", build)).items():
                if name.startswith("vocab/"):
                    vocab.update(w for w in text.split("\n") if w)
                elif name.startswith("grams/"):
                    codes.append(np.frombuffer(base64.b64decode(text), dtype=np.uint64))
            stored = {kind: self.count(self.collection(kind, build)) for kind in ("passages", "sentences")}
        offsets = row_offsets(counts)
        want = manifest["counts"]
        if not (stored["passages"] == len(passages) == want.get("passages")
                and stored["sentences"] == int(offsets[-1]) == want.get("sentences")):
            raise IndexCorruptError(
                f"index {self.location} holds {stored['passages']} passage vectors and {stored['sentences']} sentence "
                f"vectors for {len(passages)} passages of {want.get('passages')} and {int(offsets[-1])} sentences "
                f"of {want.get('sentences')}; rebuild with: {self.rebuild_command(manifest)}")
        grams = CharGrams(np.unique(np.concatenate(codes))) if manifest.get("grams") and codes else None
        return self.index_data(build, docs, passages, vhashes, vocab, offsets, grams)

    def index_data(self, build: str, docs: list[Document], passages: list[Passage], vhashes: list[str],
                   vocab: set[str], offsets: np.ndarray, grams: CharGrams | None) -> IndexData:
        """The stages' objects over one build's collections (its words ``vocab``, sentence ``offsets``)."""
        where = (self.location, self.uri)
        return IndexData(docs, passages, vhashes,
                         MilvusDense(self.client, self.collection("passages", build), len(passages), *where),
                         MilvusLexical(self.client, self.collection("passages", build),
                                       {w: i for i, w in enumerate(sorted(vocab))}, *where),
                         MilvusSentences(self.client, self.collection("sentences", build), offsets, *where), grams)

    def read_documents(self, build: str, manifest: dict
                       ) -> tuple[list[Document], list[Passage], list[str], list[int]]:
        """Documents, passages (by row), their embedding hashes and sentence counts of one build."""
        records = []
        for name, text in self.read_blobs(self.collection("documents", build)).items():
            try:
                records.append(json.loads(text))
            except ValueError:
                raise IndexCorruptError(f"document record {name} of {self.location} is cut short; rebuild with: "
                                        f"{self.rebuild_command(manifest)}") from None
        docs, rows = [], {}
        for no, rec in enumerate(sorted(records, key=lambda r: r.get("no", -1))):
            if rec.get("no") != no:
                raise IndexCorruptError(f"index {self.location} lacks documents (record {no} of {len(records)}); "
                                        f"rebuild with: {self.rebuild_command(manifest)}")
            doc = document_from_record(rec)
            docs.append(doc)
            for row, pid, start, end, paragraph, heading, vh, n in rec["passages"]:
                rows[row] = (passage_of(doc, pid, start, end, paragraph, heading), vh, n)
        if sorted(rows) != list(range(len(rows))):
            raise IndexCorruptError(f"index {self.location} lacks passages; rebuild with: "
                                    f"{self.rebuild_command(manifest)}")
        ordered = [rows[r] for r in range(len(rows))]
        return docs, [p for p, _, _ in ordered], [vh for _, vh, _ in ordered], [n for _, _, n in ordered]

    def read_catalog(self, manifest: dict) -> tuple[list[Document], Counter]:
        with self.errors():
            self.load(self.collection("documents", manifest["build"]))
            docs, passages, _, _ = self.read_documents(manifest["build"], manifest)
        return docs, Counter(p.doc_id for p in passages)

    def read_extracted(self, read_settings: dict) -> dict[str, tuple[str, Document, list[str]]]:
        try:
            manifest = self.read_manifest()
            if manifest.get("read") != read_settings:
                return {}
            docs, _ = self.read_catalog(manifest)
            hashes = manifest["corpus"]["files"]
        except (IndexMissingError, IndexCorruptError, IndexMismatchError, ValueError, KeyError, TypeError):
            return {}
        warnings: dict[str, list[str]] = {}
        for name, what in manifest.get("warnings", []):
            warnings.setdefault(name, []).append(what)
        return {d.doc_id: (hashes[d.doc_id], d, warnings.get(d.doc_id, [])) for d in docs if d.doc_id in hashes}

    def read_reusable(self, wanted: set[str]) -> Reusable | None:
        """The live build's passage and sentence vectors whose embedding hash is ``wanted``."""
        try:
            manifest = self.read_manifest()
        except (IndexMissingError, IndexCorruptError, IndexMismatchError):
            return None
        found: dict[str, list[float]] = {}
        with self.errors():
            for kind in ("passages", "sentences"):
                name = self.collection(kind, manifest["build"])
                self.load(name)
                for row in self.iterate(name, ["vhash", "vector"]):
                    if row["vhash"] in wanted:
                        found.setdefault(row["vhash"], row["vector"])
        vectors = np.array(list(found.values()), dtype=np.float32).reshape(len(found), manifest["encoder"]["dim"])
        return Reusable(manifest["encoder"], list(found), vectors, None, None)

    # ---- Milvus requests ------------------------------------------------------

    def load(self, name: str) -> None:
        """Load a collection for searching (Milvus Lite releases them when its process ends)."""
        if getattr(self.client.get_load_state(name)["state"], "name", "") != "Loaded":
            self.client.load_collection(name)

    def count(self, name: str) -> int:
        """Rows of a collection, once every write before now is visible (strong consistency)."""
        res = self.client.query(name, filter="", output_fields=["count(*)"], consistency_level="Strong")
        return int(res[0]["count(*)"])

    def iterate(self, name: str, fields: list[str], filter: str = "") -> Iterator[dict]:
        """Every row of a collection (matching ``filter``), a batch at a time."""
        it = self.client.query_iterator(name, batch_size=1000, filter=filter, output_fields=fields)
        try:
            while batch := it.next():
                yield from batch
        finally:
            it.close()

    def read_blobs(self, name: str, filter: str = "") -> dict[str, str]:
        """{name: text} of the texts stored in pieces in a documents or meta collection."""
        pieces: dict[str, list[tuple[int, str]]] = {}
        for row in self.iterate(name, BLOB_FIELDS, filter):
            pieces.setdefault(row["name"], []).append((row["part"], row["data"]))
        return {k: "".join(t for _, t in sorted(v)) for k, v in pieces.items()}

    def read_blob(self, name: str, key: str) -> list[str]:
        """The pieces of one stored text, in order."""
        return list(self.read_blobs(name, f'name == "{key}"').values())

    # ---- writing -------------------------------------------------------------

    def building(self) -> AbstractContextManager[None]:
        """Nothing to hold: Milvus Lite admits one process, and on a server a build writes collections of
        its own (parallel shards share theirs on purpose)."""
        return contextlib.nullcontext()

    def write(self, built: Built, config: IndexConfig, progress: Progress | None = None) -> Written:
        """Write this build's (or shard's) rows, then, once every shard is done, the manifest; switch the
        alias to it and drop what is neither it nor the build before."""
        shard, shards = built.shard
        if self.lite:
            Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
        with self.errors():
            try:
                live = self.read_manifest()
            except (IndexMissingError, IndexCorruptError, IndexMismatchError):
                live = None
            build = self.build_id(built, config)
            if live is not None and live["build"] == build:  # this corpus, so built, is already live
                return Written(self.read_index(live), live)
            writer = MilvusWriter(self, build, config)
            writer.create(int(built.settings["encoder"]["dim"]))
            writer.mark(shard, shards, "started")
            if shards > 1:
                writer.delete_shard(shard)
            vocab = writer.insert(built, progress)
            writer.mark(shard, shards, "done")
            missing = writer.missing(shards)
            if missing:
                return Written(None, None, missing)
            manifest = self.manifest(built, build, live, config)
            writer.put("meta", "manifest", json.dumps(manifest, ensure_ascii=False))
            self.switch(build)
            self.sweep({build} | ({live["build"]} if live else set()))
            if shards > 1:  # the machines of a parallel build keep only their report; the app loads it
                return Written(None, manifest)
            offsets = row_offsets(built.sentence_counts)
            if (self.count(self.collection("passages", build)), self.count(self.collection("sentences", build))) \
                    != (len(built.passages), int(offsets[-1])):
                raise IndexCorruptError(f"Milvus did not keep every passage written to {self.location}; build again")
        return Written(self.index_data(build, built.documents, built.passages, built.vhashes, vocab, offsets,
                                       built.grams), manifest)

    def build_id(self, built: Built, config: IndexConfig) -> str:
        """A new build's name: random for one machine; for N shards a digest of what they all read and
        how they build it, so every shard finds the others' collections."""
        if built.shard[1] == 1:
            return f"b{time.strftime('%Y%m%d%H%M%S')}{uuid.uuid4().hex[:6]}"
        s = built.settings
        key = json.dumps([s["corpus"]["files"], s["encoder"], s["split"], s["read"], s["embed"], config.bm25_k1,
                          config.bm25_b, config.char_grams_limit, built.shard[1]], sort_keys=True)
        return "s" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]

    def manifest(self, built: Built, build: str, live: dict | None, config: IndexConfig) -> dict:
        """The manifest of a build about to go live."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **built.settings,
            "store": {"engine": "milvus-lite" if self.lite else "milvus", "name": self.name,
                      "analyzer": LITE_ANALYZER if self.lite else SERVER_ANALYZER,
                      "bm25": {"k1": config.bm25_k1, "b": config.bm25_b}, "shards": built.shard[1]},
            "dense_index": "FLAT" if self.lite else "AUTOINDEX",
            "build": build,
            "previous": live["build"] if live else None,
            "grams": len(built.passages) <= config.char_grams_limit,
            "counts": {"documents": len(built.documents), "passages": len(built.passages),
                       "sentences": int(sum(built.sentence_counts))},
        }

    def switch(self, build: str) -> None:
        """Point the alias at ``build``'s meta collection: from now on the index answers from it."""
        meta = self.collection("meta", build)
        if self.name in self.client.list_aliases().get("aliases", []):
            self.client.alter_alias(meta, self.name)
        else:
            self.client.create_alias(meta, self.name)

    def sweep(self, keep: set[str]) -> None:
        """Drop the collections of builds not in ``keep``, except unfinished builds under ``STALE_HOURS``
        old that may still be running: on a server any of them, on Milvus Lite (one process at a time)
        a parallel build whose other shards are still to run."""
        pattern = re.compile(rf"{re.escape(self.name)}_(?:{'|'.join(KINDS)})_([a-z0-9]+)")
        found = {m[1] for c in self.client.list_collections() if (m := pattern.fullmatch(c))}
        writer = MilvusWriter(self, "", IndexConfig())
        marks = writer.marks()
        dropped = set()
        for build in sorted(found - keep):
            started, done, shards = marks.get(build, (0.0, True, 1))
            if not done and (shards > 1 or not self.lite) and time.time() - started < STALE_HOURS * 3600:
                continue
            for kind in KINDS:
                if self.client.has_collection(self.collection(kind, build)):
                    self.client.drop_collection(self.collection(kind, build))
            dropped.add(build)
        writer.forget(dropped & set(marks))

    # ---- where the corpus is -----------------------------------------------

    def corpus_path(self, manifest: dict) -> Path | None:
        return corpus_path(manifest, Path("."))

    def rebuild_command(self, manifest: dict | None = None) -> str:
        return rebuild_command(self.location, manifest)


