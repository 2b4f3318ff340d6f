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
                           (abstention's "does the corpus use this word"; up to 200,000 passages,
                           and absent from indexes built before 2026-12-01: made on first use)

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
import hashlib
import json
import os
import re
import shlex
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import (
    IndexCorruptError,
    IndexLockedError,
    IndexMismatchError,
    IndexMissingError,
    IndexOutdatedError,
    IndexWriteError,
)
from .schema import Block, Document, Passage

FORMAT = "qa-index"
FORMAT_VERSION = 2  # 2: sentences/ (version 1 indexes are rebuilt, reusing their passage vectors)
VERIFY_LIMIT = 256 * 1024 * 1024  # files up to this total size are hashed on every load
_BUILD_NAME = re.compile(r"build-[A-Za-z0-9_-]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def corpus_path(manifest: dict, index_dir: Path) -> Path | None:
    """The corpus an index was built from, as an absolute path; None when it cannot be known.

    Indexes record their corpus's absolute path. Older ones recorded the path as given, relative to
    wherever the build ran; such a path is trusted only when it names the same folder from the current
    folder and from the index's parent (the usual ``corpus/`` beside ``index/``), so a copied index is
    never refreshed from an unrelated ``corpus/`` that happens to be beside the user.
    """
    raw = (manifest.get("corpus") or {}).get("path") if isinstance(manifest.get("corpus"), dict) else None
    if not isinstance(raw, str) or not raw:
        return None
    path = Path(raw)
    if path.is_absolute():
        return path
    here, beside = path.resolve(), (Path(index_dir).resolve().parent / path).resolve()
    return here if here == beside else None


def rebuild_command(index_dir: Path, manifest: dict | None = None) -> str:
    """The command that rebuilds ``index_dir`` as it was built: its corpus, encoder and passage size.

    What the manifest does not tell (it is unreadable, or lacks the field) is left for the user to
    fill in, and the text says so.
    """
    manifest = manifest if isinstance(manifest, dict) else {}
    parts = ["python -m qa build --index", shlex.quote(str(index_dir))]
    corpus = corpus_path(manifest, Path(index_dir))
    encoder = (manifest.get("encoder") or {}).get("name") if isinstance(manifest.get("encoder"), dict) else None
    split = manifest.get("split") if isinstance(manifest.get("split"), dict) else {}
    parts += ["--corpus", shlex.quote(str(corpus)) if corpus else "DIR"]
    parts += ["--encoder", shlex.quote(encoder) if isinstance(encoder, str) else "SPEC"]
    if isinstance(split.get("max_chars"), int):
        parts += ["--max-chars", str(split["max_chars"])]
    command = " ".join(parts)
    if corpus and isinstance(encoder, str):
        return command
    unknown = " and ".join(n for n, v in (("corpus", corpus), ("encoder", encoder)) if not v)
    return f"{command} (the {unknown} it was built with cannot be read from the index: name them)"


def check_folder(index_dir: Path) -> None:
    """Refuse an index path that exists but is not a folder."""
    if index_dir.exists() and not index_dir.is_dir():
        raise IndexWriteError(
            f"--index {str(index_dir)!r} is a file, not an index folder; pass a folder (it is created when missing)"
        )


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


def file_digest(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
            write_documents(build_dir / "documents.jsonl", documents)
            write_passages(build_dir / "passages.jsonl", passages, vhashes)
            dense.save(build_dir / "dense.faiss")
            lexical.save(build_dir / "bm25")
            sentences.save(build_dir / "sentences")
            if grams is not None:
                grams.save(build_dir / grams.FILE)
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


def current_build(index_dir: Path) -> str | None:
    """The build folder the manifest names, or None (no manifest, or one that cannot be read)."""
    try:
        build = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8")).get("build")
    except (OSError, ValueError, AttributeError):
        return None
    return build if isinstance(build, str) else None


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


def read_manifest(index_dir: Path, any_version: bool = False) -> dict:
    """Read and check ``manifest.json``; errors say how to rebuild. ``any_version``: accept an older
    ``format_version`` too (to rebuild it, reusing what it holds)."""
    check_folder(index_dir)
    path = index_dir / "manifest.json"
    if not path.is_file():
        raise IndexMissingError(
            f"no index in {str(index_dir)!r}; build one with: python -m qa build --index {shlex.quote(str(index_dir))}"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IndexCorruptError(
            f"{path} is not valid JSON ({exc}); rebuild with: {rebuild_command(index_dir)}"
        ) from None
    except OSError as exc:
        raise IndexCorruptError(f"cannot read {str(path)!r} ({exc.strerror}); check its permissions") from None
    if not isinstance(manifest, dict):
        raise IndexCorruptError(f"{path} is not an index manifest; rebuild with: {rebuild_command(index_dir)}")
    fix = f"rebuild with: {rebuild_command(index_dir, manifest)}"
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise IndexMismatchError(
            f"{path} has format_version {version!r}, not a whole number (edited by hand?); {fix}"
        )
    older = manifest.get("format") == FORMAT and 1 <= version < FORMAT_VERSION
    if older and not any_version:
        raise IndexOutdatedError(
            f"index {str(index_dir)!r} was written in format v{version}, this version reads v{FORMAT_VERSION}; "
            f"rebuild it (passage vectors are reused) with: {rebuild_command(index_dir, manifest)}"
        )
    if manifest.get("format") != FORMAT or (version != FORMAT_VERSION and not older):
        raise IndexMismatchError(
            f"index {str(index_dir)!r} has format {manifest.get('format')!r} v{version}, "
            f"this version reads {FORMAT!r} v{FORMAT_VERSION}; {fix}"
        )
    try:
        ok = (isinstance(manifest["encoder"]["name"], str) and isinstance(manifest["encoder"]["dim"], int)
              and isinstance(manifest["corpus"]["files"], dict) and isinstance(manifest["build"], str)
              and isinstance(manifest["files"], dict) and isinstance(manifest["counts"], dict))
    except (KeyError, TypeError):
        ok = False
    if not ok:
        raise IndexCorruptError(f"{path} lacks required fields (encoder, corpus, build, files, counts); {fix}")
    if not _BUILD_NAME.fullmatch(manifest["build"]):
        raise IndexCorruptError(f"{path} names build {manifest['build']!r}, not a build folder of the index; {fix}")
    for rel, meta in manifest["files"].items():
        parts = Path(rel).parts
        if (not parts or Path(rel).is_absolute() or ".." in parts or not isinstance(meta, dict)
                or not isinstance(meta.get("bytes"), int) or not _SHA256.fullmatch(str(meta.get("sha256")))):
            raise IndexCorruptError(f"{path} lists an invalid data file {rel!r}: {meta!r} (edited by hand?); {fix}")
    return manifest


def verify_files(index_dir: Path, manifest: dict, deep: bool | None = None) -> Path:
    """Check every data file's size (and sha256, for indexes up to VERIFY_LIMIT, or when ``deep``);
    return the build dir."""
    build_dir = index_dir / str(manifest.get("build", ""))
    files = manifest.get("files") or {}
    fix = f"rebuild with: {rebuild_command(index_dir, manifest)}"
    if not build_dir.is_dir() or not files:
        raise IndexCorruptError(f"index data folder {str(build_dir)!r} is missing; {fix}")
    if deep is None:
        deep = sum(f["bytes"] for f in files.values()) <= VERIFY_LIMIT
    for rel, meta in files.items():
        path = build_dir / rel
        if not path.is_file():
            raise IndexCorruptError(f"index file {rel!r} is missing; {fix}")
        if path.stat().st_size != meta["bytes"]:
            raise IndexCorruptError(
                f"index file {rel!r} is {path.stat().st_size} bytes, expected {meta['bytes']} (truncated?); {fix}"
            )
        try:
            if deep and file_digest(path) != meta["sha256"]:
                raise IndexCorruptError(f"index file {rel!r} fails its checksum (corrupted); {fix}")
        except OSError as exc:
            raise IndexCorruptError(f"cannot read index file {str(path)!r} ({exc.strerror}); {fix}") from None
    return build_dir


def write_documents(path: Path, docs: list[Document]) -> None:
    """One JSON object a line per document, text included."""
    with path.open("w", encoding="utf-8") as fh:
        for d in docs:
            rec = {
                "doc_id": d.doc_id, "title": d.title, "date": d.date, "source": d.source,
                "encoding": d.encoding, "text": d.text,
                "blocks": [[b.start, b.end, b.paragraph, b.heading] for b in d.blocks],
                "dropped": [list(x) for x in d.dropped],
            }
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")


def read_documents(path: Path) -> list[Document]:
    """Inverse of ``write_documents``."""
    docs = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            docs.append(Document(
                doc_id=r["doc_id"], text=r["text"], title=r["title"], date=r["date"],
                source=r["source"], encoding=r["encoding"],
                blocks=tuple(Block(*b) for b in r["blocks"]),
                dropped=tuple(tuple(x) for x in r["dropped"]),
            ))
    return docs


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
            doc = docs[r["doc_id"]]
            passages.append(Passage(
                id=r["id"], doc_id=r["doc_id"], text=doc.text[r["start"]:r["end"]],
                start=r["start"], end=r["end"], title=doc.title,
                paragraph=r["paragraph"], heading=r["heading"],
            ))
            vhashes.append(r["vhash"])
    return passages, vhashes
