"""Ingest: read a corpus folder, one text file or a docs.jsonl into cleaned ``Document`` records.

Files are decoded from their bytes (UTF-8 with or without BOM, UTF-16 with BOM,
GB18030/GBK, Big5); nothing is re-encoded or normalised, so every offset we store
points at the characters a user sees when they open the file.

A folder scan reads the regular files ending in ``READ_SUFFIXES`` in every subfolder: text files
are decoded, PDF, Word and web-page files are read by ``qa.readers`` in a child process, each within
``read.timeout_s`` (their extracted text is what is stored and quoted, page starts recorded for a PDF). A subfolder's README.md is a document like any
other. The scan reports every other file
or folder it skips in ``IngestReport.skipped``, with the reason. It never opens a FIFO
(that blocks) or reads a device (``/dev/zero`` never ends), reads at most
``MAX_FILE_BYTES + 1`` bytes of a file whatever its size claims, follows a symlink only
when its real path stays inside the corpus unless ``follow_links=True`` (a link could
serve any file of the machine), and reads a folder reached twice (a loop) once.
Left out quietly: hidden files and folders, ``NAME.meta.json`` sidecars (read with
their file) and the README.md / LICENSE / LICENCE at the corpus root, which describe
the corpus rather than belong to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, NamedTuple

from .clean import clean_document
from .config import ReadConfig
from .errors import CorpusError
from .files import NotRegularFileError, decode_line, iter_lines, open_regular, outside_link, read_limited
from .readers.extract import Progress
from .readers.worker import ReaderProcess
from .schema import Document
from .text import plausibility

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text")
DOCUMENT_SUFFIXES = (".pdf", ".docx", ".html", ".htm")
READ_SUFFIXES = TEXT_SUFFIXES + DOCUMENT_SUFFIXES
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_SIDECAR_BYTES = 1024 * 1024
SIDECAR_SUFFIX = ".meta.json"
ROOT_NOTES = ("readme.md", "licence", "license")
EXPECTED = f"a folder, a document ({', '.join(READ_SUFFIXES)}) or a .jsonl docs file"
UNSUPPORTED = f"not a supported file type; only {', '.join(READ_SUFFIXES)} files are read (save it as one to index it)"
OUTSIDE = "link points outside the corpus; not followed (it leads to {}): copy what it points to into the corpus"


@dataclass
class IngestReport:
    """What a corpus scan found: the documents, and every file it skipped and why."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Decode file bytes to (text, encoding name); raise ``CorpusError`` if not text."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise CorpusError(f"bad UTF-16 ({exc.reason} at byte {exc.start})") from None
    if b"\x00" in data[:8192]:
        raise CorpusError("binary file (NUL bytes); save it as UTF-8 text to index it")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    candidates = []
    for enc in ("gb18030", "big5"):
        try:
            candidates.append((data.decode(enc), enc))
        except UnicodeDecodeError:
            continue
    if not candidates:
        raise CorpusError("not UTF-8, GB18030 or Big5 text; re-save it as UTF-8 to index it")
    return max(candidates, key=lambda c: plausibility(c[0]))


def title_from_path(rel: str) -> str:
    """A readable fallback title from a file name: 'a/b-c.zh-Hant.txt' -> 'b c'."""
    stem = Path(rel).name.split(".")[0]
    return stem.replace("-", " ").replace("_", " ").strip() or rel


def read_sidecar(path: Path, real_root: str | None = None) -> tuple[str | None, dict[str, str] | str]:
    """(text the file's hash includes, metadata) of ``NAME.meta.json`` beside ``path``, or (text, why it is ignored).

    Metadata is {"title", "date", "source"}. The sidecar is read as safely as its file:
    regular files only, at most ``MAX_SIDECAR_BYTES``, not through a link leaving ``real_root``.
    """
    side = path.with_name(path.name + SIDECAR_SUFFIX)
    try:
        if target := outside_link(side, real_root):
            return None, f"ignored {side.name}: " + OUTSIDE.format(target)
        data = read_limited(side, MAX_SIDECAR_BYTES)
    except FileNotFoundError:
        return None, {}
    except NotRegularFileError as exc:
        return None, f"ignored {side.name}: {exc}"
    except OSError as exc:
        return None, f"ignored {side.name}: cannot read ({exc.strerror or exc})"
    if data is None:
        return None, f"ignored {side.name}: larger than {MAX_SIDECAR_BYTES >> 20} MB; it holds only a title, date and source"
    text = data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "\n")  # as text mode reads it
    try:
        meta = json.loads(data.decode("utf-8-sig"))
    except ValueError as exc:
        return text, f"ignored {side.name}: not valid JSON ({exc})"
    if not isinstance(meta, dict):
        return text, f"ignored {side.name}: expected a JSON object"
    return text, {k: str(v) for k, v in meta.items() if k in ("title", "date", "source") and v}


def _with_sidecar(digest: str, text: str | None) -> str:
    """A file's recorded hash: the sha256 of its bytes, combined with its sidecar's text when it has one."""
    return digest if text is None else sha256_bytes((digest + text).encode())


class SourceFile(NamedTuple):
    """One corpus file as read: bytes, recorded hash (None: never opened), why it is skipped, sidecar metadata."""

    data: bytes | None = None
    hash: str | None = None
    problem: str | None = None
    meta: dict[str, str] | str = {}


def read_source(path: Path, real_root: str | None = None) -> SourceFile:
    """Read one corpus file and its sidecar, never more than ``MAX_FILE_BYTES + 1`` bytes; never raises."""
    try:
        data = read_limited(path, MAX_FILE_BYTES)
    except NotRegularFileError as exc:
        return SourceFile(problem=str(exc))
    except OSError as exc:
        return SourceFile(hash=f"unreadable: {exc.strerror}", problem=f"cannot read ({exc.strerror or exc})")
    if data is None:  # what lies past the limit does not matter while the file stays skipped
        return SourceFile(hash=f"larger than {MAX_FILE_BYTES} bytes",
                          problem=f"larger than {MAX_FILE_BYTES >> 20} MB; split it into smaller files")
    text, meta = read_sidecar(path, real_root)
    return SourceFile(data, _with_sidecar(sha256_bytes(data), text), None, meta)


def file_hash(path: Path) -> str:
    """The recorded hash of a file of any size (a docs.jsonl), read in chunks; a marker when unreadable."""
    h = hashlib.sha256()
    try:
        with open_regular(path) as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    return _with_sidecar(h.hexdigest(), read_sidecar(path, os.path.realpath(path.parent))[0])


# ---- the corpus -----------------------------------------------------------------------


def iter_corpus_files(root: str | Path, follow_links: bool = False) -> Iterator[tuple[str, Path | None, str | None]]:
    """Yield (relative path, path, None) for each text file to read, or (rel, None, reason) to skip.

    Depth first, each folder's files (by name) before its subfolders; what is read,
    skipped or left out quietly is listed in this module's docstring.
    """
    root = Path(root)
    real_root = None if follow_links else os.path.realpath(root)
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                yield folder.relative_to(root).as_posix(), None, "symlink loop (folder already visited)"
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield folder.relative_to(root).as_posix(), None, f"cannot open folder ({exc.strerror or exc}); make it readable"
            continue
        subfolders = []
        for entry in (e for e in entries if not e.name.startswith(".")):
            path = folder / entry.name
            rel = path.relative_to(root).as_posix()
            try:
                mode = entry.stat().st_mode  # through a link; a broken one is reported when read
            except OSError:
                mode = stat.S_IFREG
            if not stat.S_ISDIR(mode) and (entry.name.endswith(SIDECAR_SUFFIX)
                                           or (folder == root and entry.name.lower() in ROOT_NOTES)):
                continue
            if target := outside_link(path, real_root):
                yield rel, None, OUTSIDE.format(target)
            elif stat.S_ISDIR(mode):
                subfolders.append(path)
            elif not entry.name.lower().endswith(READ_SUFFIXES):
                yield rel, None, UNSUPPORTED
            else:
                yield rel, *((path, None) if stat.S_ISREG(mode) else (None, str(NotRegularFileError(mode))))
        stack.extend(reversed(subfolders))


def corpus_kind(p: Path) -> Literal["folder", "jsonl", "text"]:
    """What kind of corpus ``p`` is; raise ``CorpusError`` saying what is expected when it is none."""
    try:
        mode = os.stat(p).st_mode
    except OSError as exc:
        why = "does not exist" if isinstance(exc, FileNotFoundError) else f"cannot be opened ({exc.strerror or exc})"
        raise CorpusError(f"corpus {str(p)!r} {why}; pass --corpus with {EXPECTED}") from None
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode) and p.name.lower().endswith((".jsonl", *READ_SUFFIXES)):
        return "jsonl" if p.name.lower().endswith(".jsonl") else "text"
    kind = "file of an unsupported type" if stat.S_ISREG(mode) else NotRegularFileError(mode).kind
    raise CorpusError(f"corpus {str(p)!r} is a {kind}; pass --corpus with {EXPECTED}")


def _sources(p: Path, follow_links: bool, on_file: Callable[[str], None] | None = None) -> Iterator[tuple[str, SourceFile]]:
    """(relative path, ``read_source`` result) of each file of the folder or the one text file ``p``."""
    kind = corpus_kind(p)
    if kind == "jsonl":
        raise CorpusError(f"corpus {str(p)!r} is a docs file; read it with load_corpus or read_docs_jsonl")
    single = kind == "text"  # named by the user: followed even as a link; its sidecar is checked
    real_root = None if follow_links else os.path.realpath(p.parent if single else p)
    for rel, path, reason in [(p.name, p, None)] if single else iter_corpus_files(p, follow_links):
        if on_file:
            on_file(rel)
        yield rel, SourceFile(problem=reason) if path is None else read_source(path, real_root)


Reuse = Mapping[str, tuple[str, Document, list[str]]]  # file name -> (its hash then, its document, its warnings)


def read_corpus(root: str | Path, on_file: Callable[[str], None] | None = None, follow_links: bool = False,
                read: ReadConfig = ReadConfig(), progress: Progress | None = None, reuse: Reuse | None = None
                ) -> IngestReport:
    """Read and clean every document under the folder ``root`` (or the one document ``root``); bad files are
    skipped. ``progress("ocr", done, total)`` is called while a PDF's pages are read by OCR. A PDF, Word or
    web-page file whose hash is the one ``reuse`` holds for it is not read again: its document is reused."""
    report = IngestReport()
    with ReaderProcess(read.timeout_s) as reader:  # started by the first file that needs it
        for rel, src in _sources(Path(root), follow_links, on_file):
            if src.hash is not None:
                report.hashes[rel] = src.hash
            old = (reuse or {}).get(rel)
            if old and src.problem is None and old[0] == src.hash and rel.lower().endswith(DOCUMENT_SUFFIXES):
                report.documents.append(old[1])
                report.warnings += [(rel, w) for w in old[2]]
                continue
            got = None
            try:
                if src.problem or src.data is None:
                    raise CorpusError(src.problem or "not read")
                if rel.lower().endswith(TEXT_SUFFIXES):
                    text, encoding = decode_bytes(src.data)
                else:
                    got = reader.read(rel, src.data, read, progress)
                    text, encoding = got.text, got.kind
            except CorpusError as exc:
                report.skipped.append((rel, str(exc)))
                continue
            meta = src.meta if isinstance(src.meta, dict) else {}
            if isinstance(src.meta, str):
                report.warnings.append((rel, src.meta))
            if got is not None:
                report.warnings += [(rel, w) for w in got.warnings]
            add_document(report, rel, text, encoding, fallback_title=title_from_path(rel),
                         title=meta.get("title") or (got and got.title), date=meta.get("date") or (got and got.date),
                         source=meta.get("source"), pages=got.pages if got else (), known=got.known if got else None)
    return report


def add_document(
    report: IngestReport,
    doc_id: str,
    text: str,
    encoding: str,
    fallback_title: str = "",
    title: str | None = None,
    date: str | None = None,
    source: str | None = None,
    pages: tuple[int, ...] = (),
    known: dict[int, str] | None = None,
) -> None:
    """Clean one decoded or extracted text and add it to the report (or note why it was skipped).
    ``pages``: where each page begins (a PDF); ``known``: line labels the format gave (see ``clean``)."""
    if not text.strip():
        report.skipped.append((doc_id, "empty (no text)"))
        return
    doc = clean_document(doc_id, text, encoding=encoding, fallback_title=fallback_title, title=title, known=known)
    if date or source or pages:
        doc = replace(doc, date=date or doc.date, source=source or doc.source, pages=tuple(pages))
    if not doc.blocks:
        report.skipped.append((doc_id, "no content left after cleaning"))
        return
    for s, e in doc.garbled:
        report.warnings.append((doc_id, f"garbled text at {s}-{e} left out: {text[s:e]!r}"))
    if "\x00" in text:
        report.warnings.append((doc_id, "contains NUL characters"))
    report.documents.append(doc)


def read_docs_jsonl(path: str | Path) -> IngestReport:
    """Read a ``{"doc_id", "title", "text"}`` JSON-lines file as a corpus; bad lines are skipped by number."""
    path = Path(path)
    try:
        fh = open_regular(path)
    except OSError as exc:
        why = "does not exist" if isinstance(exc, FileNotFoundError) else f"cannot be read: {exc.strerror or exc}"
        raise CorpusError(f"docs file {str(path)!r} {why}") from None
    report = IngestReport(hashes={path.name: file_hash(path)})
    seen: dict[str, int] = {}
    with fh:
        for lineno, raw in iter_lines(fh):
            try:
                line = decode_line(raw)
                if not line.strip():
                    continue
                rec = json.loads(line)
                doc_id, text = str(rec["doc_id"]), rec["text"]
                if not isinstance(text, str):
                    raise TypeError("text is not a string")
            except (ValueError, KeyError, TypeError) as exc:
                report.skipped.append((f"{path.name}:{lineno}", f"bad line ({exc})"))
                continue
            if doc_id in seen:
                report.skipped.append((f"{path.name}:{lineno}", f"duplicate doc_id {doc_id!r} (first on line {seen[doc_id]})"))
                continue
            seen[doc_id] = lineno
            add_document(report, doc_id, text, "utf-8", title=str(rec.get("title") or doc_id))
    return report


def current_hashes(corpus: str | Path, follow_links: bool = False) -> dict[str, str]:
    """The hashes ``load_corpus`` would record, without decoding or cleaning anything ({} when there is no corpus)."""
    p = Path(corpus)
    try:
        if corpus_kind(p) == "jsonl":
            return {p.name: file_hash(p)}
        return {rel: src.hash for rel, src in _sources(p, follow_links) if src.hash is not None}
    except CorpusError:
        return {}


def load_corpus(corpus: str | Path, follow_links: bool = False, read: ReadConfig = ReadConfig(),
                progress: Progress | None = None, reuse: Reuse | None = None) -> IngestReport:
    """Read a corpus given as a folder, a ``.jsonl`` docs file, or one document (doc_id: its file name)."""
    p = Path(corpus)
    if corpus_kind(p) == "jsonl":
        return read_docs_jsonl(p)
    return read_corpus(p, follow_links=follow_links, read=read, progress=progress, reuse=reuse)
