"""Ingest: read a corpus folder or a docs.jsonl into cleaned ``Document`` records.

Files are decoded from their bytes (UTF-8 with or without BOM, UTF-16 with BOM,
GB18030/GBK, Big5); nothing is re-encoded or normalised, so every offset we store
points at the characters a user sees when they open the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from .clean import clean_document
from .errors import CorpusError
from .schema import Document

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text")
MAX_FILE_BYTES = 64 * 1024 * 1024


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


@lru_cache(maxsize=1)
def char_frequencies() -> dict[str, int]:
    """Per-character frequency (Simplified) summed over jieba's word dictionary."""
    import jieba

    freq: dict[str, int] = {}
    path = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            word, count, _ = line.split(" ")
            n = int(count)
            for ch in word:
                freq[ch] = freq.get(ch, 0) + n
    return freq


def _plausibility(text: str) -> float:
    """Mean log-frequency of the CJK characters in a decoding (higher is likelier right)."""
    from .text import fold

    sample = fold(text[:20000])
    freq = char_frequencies()
    chars = [c for c in sample if not c.isascii() and not c.isspace()]
    if not chars:
        return 0.0
    # Kana, box drawing, private-use and other non-CJK characters score 0: mis-decoded
    # Big5 read as GB18030 is full of them.
    return sum(math.log1p(freq.get(c, 0)) if "\u3400" <= c <= "\u9fff" else 0.0 for c in chars) / len(chars)


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
    return max(candidates, key=lambda c: _plausibility(c[0]))


def title_from_path(rel: str) -> str:
    """A readable fallback title from a file name: 'a/b-c.zh-Hant.txt' -> 'b c'."""
    stem = Path(rel).name.split(".")[0]
    return stem.replace("-", " ").replace("_", " ").strip() or rel


def iter_corpus_files(root: Path) -> Iterator[tuple[str, Path | None, str | None]]:
    """Yield (relative path, path, None) for text files, or (rel, None, reason) to skip."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError as exc:
            yield os.path.relpath(dirpath, root), None, f"cannot open folder ({exc.strerror})"
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            yield os.path.relpath(dirpath, root), None, "symlink loop (folder already visited)"
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name.lower() in ("readme.md", "licence", "license"):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if not name.lower().endswith(TEXT_SUFFIXES):
                yield rel, None, f"not a text file (indexed types: {', '.join(TEXT_SUFFIXES)})"
                continue
            yield rel, path, None


def read_corpus(
    root: str | Path, on_file: Callable[[str], None] | None = None
) -> IngestReport:
    """Read and clean every text file under ``root``; bad files are skipped, not fatal."""
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"corpus folder {str(root)!r} does not exist; pass --corpus DIR")
    report = IngestReport()
    for rel, path, reason in iter_corpus_files(root):
        if on_file:
            on_file(rel)
        if path is None:
            if reason and not reason.startswith("not a text file"):
                report.skipped.append((rel, reason))
            continue
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                report.hashes[rel] = file_hash(path)
                raise CorpusError(f"larger than {MAX_FILE_BYTES >> 20} MB; split it into smaller files")
            data = path.read_bytes()
            report.hashes[rel] = source_hash(path, data)
            text, encoding = decode_bytes(data)
        except CorpusError as exc:
            report.skipped.append((rel, str(exc)))
            continue
        except OSError as exc:
            report.hashes[rel] = _unreadable(exc)
            report.skipped.append((rel, f"cannot read ({exc.strerror or exc})"))
            continue
        meta = read_sidecar(path)
        if isinstance(meta, str):
            report.warnings.append((rel, meta))
            meta = {}
        add_document(report, rel, text, encoding, fallback_title=title_from_path(rel), title=meta.get("title"),
                     date=meta.get("date"), source=meta.get("source"))
    return report


SIDECAR_SUFFIX = ".meta.json"


def read_sidecar(path: Path) -> dict | str:
    """Metadata from ``NAME.meta.json`` beside a file ({"title", "date", "source"}), or why it is unusable."""
    side = path.with_name(path.name + SIDECAR_SUFFIX)
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        return f"ignored {side.name}: not valid JSON ({exc})"
    if not isinstance(meta, dict):
        return f"ignored {side.name}: expected a JSON object"
    return {k: str(v) for k, v in meta.items() if k in ("title", "date", "source") and v}


def add_document(
    report: IngestReport,
    doc_id: str,
    text: str,
    encoding: str,
    fallback_title: str = "",
    title: str | None = None,
    date: str | None = None,
    source: str | None = None,
) -> None:
    """Clean one decoded text and add it to the report (or note why it was skipped)."""
    if not text.strip():
        report.skipped.append((doc_id, "empty (no text)"))
        return
    doc = clean_document(doc_id, text, encoding=encoding, fallback_title=fallback_title, title=title)
    if date or source:
        doc = replace(doc, date=date or doc.date, source=source or doc.source)
    if not doc.blocks:
        report.skipped.append((doc_id, "no content left after cleaning"))
        return
    for s, e in doc.garbled:
        report.warnings.append((doc_id, f"garbled text at {s}-{e} left out: {text[s:e]!r}"))
    if "\x00" in text:
        report.warnings.append((doc_id, "contains NUL characters"))
    report.documents.append(doc)


def read_docs_jsonl(path: str | Path) -> IngestReport:
    """Read a ``{"doc_id", "title", "text"}`` JSON-lines file as a corpus."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"docs file {str(path)!r} does not exist")
    report = IngestReport(hashes={path.name: file_hash(path)})
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
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


def source_hash(path: Path, data: bytes) -> str:
    """Hex sha256 of a file's bytes ``data``, combined with its .meta.json sidecar when present."""
    digest = sha256_bytes(data)
    side = path.with_name(path.name + SIDECAR_SUFFIX)
    if side.is_file():
        digest = sha256_bytes((digest + side.read_text(encoding="utf-8", errors="replace")).encode())
    return digest


def _unreadable(exc: OSError) -> str:
    """The hash marker of a file that cannot be read."""
    return f"unreadable: {exc.strerror}"


def file_hash(path: Path) -> str:
    """``source_hash`` of a file read from disk, or a marker when unreadable."""
    try:
        return source_hash(path, path.read_bytes())
    except OSError as exc:
        return _unreadable(exc)


def current_hashes(corpus: str | Path) -> dict[str, str]:
    """The hashes ``load_corpus`` would record, without decoding or cleaning anything."""
    p = Path(corpus)
    if p.is_file():
        return {p.name: file_hash(p)}
    if not p.is_dir():
        return {}
    return {rel: file_hash(path) for rel, path, _ in iter_corpus_files(p) if path is not None}


def load_corpus(corpus: str | Path) -> IngestReport:
    """Read a corpus given as a folder or a ``.jsonl`` docs file."""
    p = Path(corpus)
    if p.is_file() and p.suffix == ".jsonl":
        return read_docs_jsonl(p)
    return read_corpus(p)
