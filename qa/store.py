"""Store: the index folder on disk, written atomically and checked on load.

Layout of an index folder::

    index/
      manifest.json        format version, encoder, settings, corpus hashes, counts,
                           and the sha256 and size of every data file
      <build_id>/          the data of one build
        documents.jsonl    one cleaned document a line (full text, blocks, metadata)
        passages.jsonl     one passage a line (offsets only; text is sliced from its document)
        dense.faiss        FAISS index of the passage vectors
        sentences/         vectors of each passage's sentences (vectors.npy, float16) and the
                           first row of each passage's (offsets.npy)
        bm25/              bm25s arrays (.npy) and vocabulary (.json)
        chargrams.npy      sorted codes of the folded text's characters and character pairs
                           (abstention's "does the corpus use this word"; up to
                           IndexConfig.char_grams_limit passages; absent from older indexes,
                           which make them on first use)
      feedback.jsonl       what users said about answers (``qa.feedback``): beside the build
                           folders, so a rebuild keeps it

Only this module knows these names: the stages read and write the objects they hold.

A build writes a new ``<build_id>/`` folder beside the old one and then replaces
``manifest.json`` with ``os.replace``: until that instant the old manifest and its
data are untouched, so a crash at any point leaves the previous index loadable.
Old build folders are removed after the switch. A lock file stops two builds from
running into the same folder at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from .errors import IndexCorruptError, IndexLockedError, IndexWriteError, QAError
from .files import file_digest
from .manifest import (  # noqa: F401 - re-exported: the store is the one way to an index folder
    FORMAT,
    FORMAT_VERSION,
    VERIFY_LIMIT,
    check_folder,
    corpus_path,
    current_build,
    read_manifest,
    rebuild_command,
    verify_files,
)
from .schema import Document, Passage
from .search import DenseIndex, LexicalIndex, SentenceVectors
from .stores import IndexData, Reusable, document_from_record, document_record, passage_of  # noqa: F401 - re-exported
from .text import CharGrams

DOCUMENTS, PASSAGES, DENSE, LEXICAL, SENTENCES, GRAMS = (
    "documents.jsonl", "passages.jsonl", "dense.faiss", "bm25", "sentences", "chargrams.npy")
FEEDBACK = "feedback.jsonl"


def feedback_path(index_dir: str | Path) -> Path:
    """The feedback file of an index: in the index folder, outside every build, so rebuilds keep it."""
    return Path(index_dir) / FEEDBACK


def index_version(manifest: dict) -> str:
    """The version of an index a record can name: the build folder its manifest points at (one per build)."""
    return str(manifest.get("build", ""))
@contextlib.contextmanager
def writing(index_dir: Path) -> Iterator[None]:
    """Turn a failed write under ``index_dir`` into an ``IndexWriteError`` that says how to fix it."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or index_dir
        if exc.errno == errno.ENOSPC or exc.errno == errno.EDQUOT:
            why = f"no space left on the device holding {str(index_dir)!r}; free some space, or build into " \
                  f"another folder with --index DIR, and build again"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            why = f"cannot write {str(where)!r} ({exc.strerror}); make the index folder writable, or build " \
                  f"into another folder with --index DIR"
        elif exc.errno == errno.EISDIR:
            why = f"{str(where)!r} is a folder where the index keeps a file; remove it and build again"
        elif exc.errno == errno.ENOTDIR:
            why = f"a part of {str(where)!r} is a file, not a folder; pass another --index DIR"
        else:
            why = f"cannot write {str(where)!r} ({exc.strerror or exc}); check the index folder and build again"
        raise IndexWriteError(why) from None


@contextlib.contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``index_dir/.lock`` (released even if the process dies)."""
    check_folder(index_dir)
    with writing(index_dir):
        index_dir.mkdir(parents=True, exist_ok=True)
        fh = (index_dir / ".lock").open("a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexLockedError(
                f"another build is writing {str(index_dir)!r}; wait for it to finish and try again"
            ) from None
        yield
    finally:
        fh.close()


def new_build_dir(index_dir: Path) -> Path:
    """A fresh, empty folder for one build's data inside the index folder."""
    path = index_dir / f"build-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True)
    return path


def _fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder`` to disk."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())


def commit(index_dir: Path, build_dir: Path, manifest: dict) -> dict:
    """Record file checksums, atomically switch ``manifest.json`` to ``build_dir``, drop old builds.

    Returns the manifest as written.
    """
    _fsync_tree(build_dir)
    manifest = dict(manifest, build=build_dir.name, files={
        p.relative_to(build_dir).as_posix(): {"sha256": file_digest(p), "bytes": p.stat().st_size}
        for p in sorted(build_dir.rglob("*")) if p.is_file()
    })
    tmp = index_dir / f".manifest-{uuid.uuid4().hex[:6]}.tmp"
    try:
        tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, index_dir / "manifest.json")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    remove_stale(index_dir, keep=build_dir.name)
    return manifest


def write_build(
    index_dir: Path,
    documents: list[Document],
    passages: list[Passage],
    vhashes: list[str],
    dense,
    lexical,
    sentences,
    settings: dict,
    grams=None,
) -> dict:
    """Write one build (documents, passages, ``dense``, ``lexical``, ``sentences``, ``grams`` when given)
    and commit it with a manifest.

    ``settings`` holds the build's own manifest entries: ``encoder``, ``split``, ``embed``,
    ``corpus``, ``skipped`` and ``warnings``. Returns the manifest as written.

    A write that fails (no space left, permissions) removes this build's folder, leaves the previous
    index as it was and raises ``IndexWriteError``.
    """
    with writing(index_dir):
        # What killed or failed builds left; with no manifest at all, every build folder is such a leftover.
        remove_stale(index_dir, keep=current_build(index_dir) if (index_dir / "manifest.json").exists() else "")
        build_dir = new_build_dir(index_dir)
        try:
            write_documents(build_dir / DOCUMENTS, documents)
            write_passages(build_dir / PASSAGES, passages, vhashes)
            dense.save(build_dir / DENSE)
            lexical.save(build_dir / LEXICAL)
            sentences.save(build_dir / SENTENCES)
            if grams is not None:
                grams.save(build_dir / GRAMS)
            return commit(index_dir, build_dir, _manifest(documents, passages, dense, sentences, settings))
        except BaseException:
            if current_build(index_dir) != build_dir.name:
                shutil.rmtree(build_dir, ignore_errors=True)
            raise


def _manifest(documents: list[Document], passages: list[Passage], dense, sentences, settings: dict) -> dict:
    """The manifest of one build, before its files' checksums are added."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **settings,
        "dense_index": type(dense.index).__name__,
        "counts": {"documents": len(documents), "passages": len(passages), "sentences": int(sentences.offsets[-1])},
    }


def remove_stale(index_dir: Path, keep: str | None) -> None:
    """Delete build folders and temp files other than ``keep``, the one the manifest names.

    With no ``keep`` (no manifest, or an unreadable one) build folders are left alone: they may be
    all that is left of an index the user still wants to rescue.
    """
    for path in index_dir.iterdir():
        if keep is None and path.name.startswith("build-"):
            continue
        if path.name.startswith("build-") and path.name != keep:
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(".manifest-") and path.name.endswith(".tmp"):
            path.unlink(missing_ok=True)


def write_documents(path: Path, docs: list[Document]) -> None:
    """One JSON object a line per document, text included (``stores.document_record``)."""
    with path.open("w", encoding="utf-8") as fh:
        for d in docs:
            fh.write(json.dumps(document_record(d), ensure_ascii=False) + "\n")


def read_documents(path: Path) -> list[Document]:
    """Inverse of ``write_documents``."""
    with path.open(encoding="utf-8") as fh:
        return [document_from_record(json.loads(line)) for line in fh]


def write_passages(path: Path, passages: list[Passage], vhashes: list[str]) -> None:
    """One line per passage: offsets, citation fields and the hash of its embedded text."""
    with path.open("w", encoding="utf-8") as fh:
        for p, vh in zip(passages, vhashes):
            rec = {"id": p.id, "doc_id": p.doc_id, "start": p.start, "end": p.end,
                   "paragraph": p.paragraph, "heading": p.heading, "vhash": vh}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


def read_vhashes(path: Path) -> list[str]:
    """The embedding hash of every passage in a ``passages.jsonl``, in order."""
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line)["vhash"] for line in fh]


def read_passages(path: Path, docs: dict[str, Document]) -> tuple[list[Passage], list[str]]:
    """Passages with their text sliced from the documents, and their embedding hashes."""
    passages, vhashes = [], []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            passages.append(passage_of(docs[r["doc_id"]], r["id"], r["start"], r["end"], r["paragraph"],
                                       r["heading"]))
            vhashes.append(r["vhash"])
    return passages, vhashes


def read_catalog(index_dir: Path, manifest: dict) -> tuple[list[Document], Counter]:
    """The documents of the build the manifest names and each one's passage count (no vectors read)."""
    build_dir = verify_files(index_dir, manifest, deep=False)
    try:
        docs = read_documents(build_dir / DOCUMENTS)
        with (build_dir / PASSAGES).open(encoding="utf-8") as fh:
            counts = Counter(json.loads(line)["doc_id"] for line in fh)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise IndexCorruptError(f"index {str(index_dir)!r} cannot be read ({type(exc).__name__}: {exc}); "
                                f"rebuild with: {rebuild_command(index_dir, manifest)}") from None
    return docs, counts


def read_extracted(index_dir: Path, read_settings: dict) -> dict[str, tuple[str, Document, list[str]]]:
    """{file name: (recorded hash, document, warnings)} of the current build when it was read with
    ``read_settings`` (the manifest's ``read``), from files that pass their checksum; {} otherwise.
    A rebuild reuses these for files whose hash is unchanged instead of reading (and OCRing) them again."""
    try:
        manifest = read_manifest(index_dir, any_version=True)
        if manifest.get("read") != read_settings:
            return {}
        build_dir = verify_files(index_dir, manifest, deep=True)
        docs = read_documents(build_dir / DOCUMENTS)
        hashes = manifest["corpus"]["files"]
    except (QAError, ValueError, KeyError, TypeError, OSError):
        return {}
    warnings: dict[str, list[str]] = {}
    for name, what in manifest.get("warnings", []):
        warnings.setdefault(name, []).append(what)
    return {d.doc_id: (hashes[d.doc_id], d, warnings.get(d.doc_id, [])) for d in docs if d.doc_id in hashes}


def read_index(index_dir: Path, manifest: dict, deep: bool | None = None) -> IndexData:
    """Check (``verify_files``) and read every file of the build the manifest names; a file that
    cannot be read is an ``IndexCorruptError`` that says how to rebuild."""
    build_dir = verify_files(index_dir, manifest, deep)
    try:
        docs = read_documents(build_dir / DOCUMENTS)
        passages, vhashes = read_passages(build_dir / PASSAGES, {d.doc_id: d for d in docs})
        dense = DenseIndex.load(build_dir / DENSE)
        lexical = LexicalIndex.load(build_dir / LEXICAL)
        sentences = SentenceVectors.load(build_dir / SENTENCES)
        grams = CharGrams.load(build_dir / GRAMS) if (build_dir / GRAMS).is_file() else None
    except (ValueError, KeyError, IndexError, TypeError, RuntimeError, OSError) as exc:
        raise IndexCorruptError(
            f"index {str(index_dir)!r} cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
            f"rebuild with: {rebuild_command(index_dir, manifest)}"
        ) from None
    if not dense.size == sentences.size == len(passages):
        raise IndexCorruptError(
            f"index {str(index_dir)!r} holds {dense.size} passage vectors and the sentences of {sentences.size} "
            f"passages for {len(passages)} passages; rebuild with: {rebuild_command(index_dir, manifest)}"
        )
    return IndexData(docs, passages, vhashes, dense, lexical, sentences, grams)


def read_reusable(index_dir: Path) -> Reusable | None:
    """The current build's vectors, read only from files that pass their checksum whatever the index's
    size (a rebuild that reused a damaged file would keep the damage under a fresh checksum); None
    when there is no index or it cannot be read."""
    try:
        manifest = read_manifest(index_dir, any_version=True)
        build_dir = verify_files(index_dir, manifest, deep=True)
        vhashes = read_vhashes(build_dir / PASSAGES)
        vectors = DenseIndex.load(build_dir / DENSE).vectors()
    except (QAError, ValueError, KeyError, TypeError, RuntimeError, OSError):
        return None
    try:
        sentences = SentenceVectors.load(build_dir / SENTENCES)
        docs = {d.doc_id: d for d in read_documents(build_dir / DOCUMENTS)}
        passages, _ = read_passages(build_dir / PASSAGES, docs)
        sentence_vectors = sentences.vectors[:]
    except (QAError, ValueError, KeyError, TypeError, RuntimeError, OSError):  # format 1: no sentences
        passages, sentence_vectors = None, None
    return Reusable(manifest["encoder"], vhashes, vectors, passages, sentence_vectors)
