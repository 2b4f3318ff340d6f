"""Catalog: what an index holds, document by document, and adding or removing corpus files.

``list_documents`` reads only the manifest, the documents and their passages (no vectors, no
encoder). ``add_files`` copies files into a corpus folder and ``remove_files`` sets them aside; the
caller then rebuilds, which embeds only passages the index does not already hold, and deletes the
set-aside files once the new index is written (or puts them back when the build fails).
``changing`` does all of that around the caller's rebuild.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .index_spec import open_store
from .errors import CorpusError, EmptyCorpusError, IndexMissingError, QAError
from .files import NotRegularFileError, open_regular
from .ingest import READ_SUFFIXES, SIDECAR_SUFFIX, UNSUPPORTED, iter_corpus_files


@dataclass(frozen=True)
class DocInfo:
    """One corpus file as the index knows it: ``pages`` None for formats without pages, ``size`` in
    bytes (None when the file is gone), ``skipped`` the reason it is not indexed, else None."""

    name: str
    type: str
    pages: int | None
    passages: int
    size: int | None
    warnings: list[str] = field(default_factory=list)
    skipped: str | None = None

    def to_json(self) -> dict:
        """Plain dict for ``docs --json``."""
        return asdict(self)


def list_documents(index_dir: Path | str) -> list[DocInfo]:
    """Every file of the index's corpus (a folder or ``milvus:…``): the indexed ones and the skipped ones,
    by name."""
    target = open_store(index_dir)
    manifest = target.read_manifest()
    docs, counts = target.read_catalog(manifest)
    root = target.corpus_path(manifest)
    warnings: dict[str, list[str]] = {}
    for name, what in manifest.get("warnings", []):
        warnings.setdefault(name, []).append(what)

    def size(name: str) -> int | None:
        path = corpus_file(root, name)
        try:
            return os.stat(path).st_size if path is not None else None  # a docs.jsonl's records have no file
        except OSError:
            return None

    out = [DocInfo(d.doc_id, Path(d.doc_id).suffix.lstrip(".").lower() or "text", len(d.pages) or None,
                   counts[d.doc_id], size(d.doc_id), warnings.get(d.doc_id, [])) for d in docs]
    out += [DocInfo(name, Path(name).suffix.lstrip(".").lower(), None, 0, size(name), warnings.get(name, []), why)
            for name, why in manifest.get("skipped", [])]
    return sorted(out, key=lambda d: d.name)


def corpus_folder(index: str | Path, corpus: str | Path | None = None) -> Path:
    """The corpus folder ``add`` and ``remove`` change: ``corpus`` when given, else the one ``index`` was
    built from, else corpus/ (for a new index)."""
    if corpus is not None:
        return Path(corpus)
    target = open_store(index)
    try:
        built = target.read_manifest(any_version=True)
    except IndexMissingError:
        return Path("corpus")
    folder = target.corpus_path(built)
    if folder is None:
        raise QAError(f"cannot tell which folder index {str(index)!r} was built from; pass --corpus FOLDER")
    return folder


def corpus_file(root: Path | None, name: str) -> Path | None:
    """The file ``name`` of a corpus ``root`` (a folder, or the single file it names); None otherwise."""
    return None if root is None else root / name if root.is_dir() else root if root.name == name else None


def take_back(corpus: Path, added: Sequence[tuple[str, str]]) -> None:
    """Delete the files ``add_files`` added (those it replaced stay replaced): a failed build's corpus."""
    for name, state in added:
        if state == "added":
            (corpus / name).unlink(missing_ok=True)


def add_files(corpus: Path, files: list[Path]) -> list[tuple[str, str]]:
    """Copy ``files`` into the corpus folder (created if missing); (name, 'added' | 'replaced' | 'unchanged')
    each. Every file is checked before any is copied; a copy is written beside its target and renamed."""
    for f in files:
        if not f.name.lower().endswith(READ_SUFFIXES):
            raise CorpusError(f"{str(f)!r}: {UNSUPPORTED}")
        try:
            open_regular(f).close()
        except NotRegularFileError as exc:
            raise CorpusError(f"{str(f)!r}: {exc}") from None
        except OSError as exc:
            raise CorpusError(f"{str(f)!r} cannot be read ({exc.strerror or exc})") from None
    if corpus.exists() and not corpus.is_dir():
        raise CorpusError(f"the index's corpus {str(corpus)!r} is a file, not a folder; add files to a folder "
                          f"corpus (build one with: python -m qa build --corpus FOLDER)")
    corpus.mkdir(parents=True, exist_ok=True)
    done = []
    for f in files:
        target = corpus / f.name
        state = "added"
        if target.exists():
            same = target.is_file() and target.stat().st_size == f.stat().st_size and \
                target.read_bytes() == f.read_bytes()
            state = "unchanged" if same else "replaced"
        if state != "unchanged":
            tmp = corpus / f".{f.name}.{uuid.uuid4().hex[:6]}.tmp"
            try:
                shutil.copyfile(f, tmp)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        done.append((f.name, state))
    return done


@dataclass
class Removal:
    """Files ``remove_files`` set aside: hidden in their folder (a scan skips hidden names) until
    ``commit`` deletes them once the index without them is built, or ``undo`` puts them back."""

    names: list[str]
    moved: list[tuple[Path, Path]]  # (the file, its hidden name)

    def commit(self) -> None:
        """Delete the set-aside files."""
        for _, hidden in self.moved:
            hidden.unlink(missing_ok=True)

    def undo(self) -> None:
        """Put the set-aside files back where they were."""
        for path, hidden in reversed(self.moved):
            os.replace(hidden, path)

    def refusal(self, why: str) -> str:
        """The one line when the index without these files would be empty (``why``: what the build said)."""
        return (f"{', '.join(self.names)} not removed: the index would hold no documents ({why}); "
                f"an index needs one, so add others first")


def remove_files(corpus: Path, names: list[str], adding: Sequence[str] = ()) -> Removal:
    """Set aside the named files (paths relative to the corpus folder, as ``docs`` lists them) and their
    ``NAME.meta.json`` sidecars; every name is checked before any is moved, and removing every file
    the corpus holds (``adding``: names about to be copied in) is refused: an index needs a document."""
    real_root = os.path.realpath(corpus)
    paths = []
    for name in names:
        path = corpus / name
        real = os.path.realpath(path)
        if os.path.commonpath([real, real_root]) != real_root or real == real_root:
            raise CorpusError(f"{name!r} is not a file of the corpus {str(corpus)!r}; name it as docs lists it")
        if not os.path.isfile(path):
            raise CorpusError(f"no file {name!r} in the corpus {str(corpus)!r}; python -m qa docs lists them")
        paths.append(path)
    gone = {Path(os.path.normpath(n)).as_posix() for n in names}
    if not set(adding) - gone and all(rel in gone for rel, path, _ in iter_corpus_files(corpus) if path is not None):
        raise CorpusError(f"{', '.join(names)} not removed: they are the last documents of {str(corpus)!r} and an "
                          f"index needs one; add others first (python -m qa add FILE)")
    moved: list[tuple[Path, Path]] = []
    try:
        for path in paths:
            for p in (path, path.with_name(path.name + SIDECAR_SUFFIX)):
                if p.exists():
                    hidden = p.with_name(f".{p.name}.{uuid.uuid4().hex[:6]}.removed")
                    os.replace(p, hidden)
                    moved.append((p, hidden))
    except OSError as exc:
        Removal(names, moved).undo()
        raise CorpusError(f"{str(path)!r} cannot be removed ({exc.strerror or exc}); nothing was removed") from None
    return Removal(list(names), moved)


@dataclass
class Change:
    """What ``changing`` did to a corpus: ``added`` as ``add_files`` says it, ``removed`` the names set
    aside (filled once the rebuild succeeded)."""

    corpus: Path
    added: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def add(self, files: Sequence[Path]) -> list[tuple[str, str]]:
        """Copy ``files`` into the corpus (``add_files``); they are taken back if the rebuild fails."""
        done = add_files(self.corpus, list(files))
        self.added += done
        return done


@contextmanager
def changing(corpus: Path, remove: Sequence[str] = (), adding: Sequence[str] = ()) -> Iterator[Change]:
    """Set ``remove`` aside (``remove_files``; ``adding``: names the body will copy in with ``Change.add``)
    for the rebuild the ``with`` body runs; when it fails, the added files are taken back and the removed
    ones put back (removing the last documents becomes one ``CorpusError`` line), so the corpus stays as
    the index that answers holds it; when it succeeds, the removed files are deleted."""
    removal = remove_files(corpus, list(remove), adding) if remove else None
    change = Change(corpus)
    try:
        yield change
    except BaseException as exc:
        take_back(corpus, change.added)
        if removal:
            removal.undo()
            if isinstance(exc, EmptyCorpusError):
                raise CorpusError(removal.refusal(str(exc))) from None
        raise
    if removal:
        removal.commit()
        change.removed = removal.names
