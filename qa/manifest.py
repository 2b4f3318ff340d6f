"""Manifest: what an index folder's ``manifest.json`` records, checked before anything is read.

It names the build folder in use, the encoder and passage size the index was built with, where
its corpus is and the hashes of the corpus's files, and the size and sha256 of every data file.
Every error here says how to rebuild the index as it was built (``rebuild_command``).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from .errors import IndexCorruptError, IndexMismatchError, IndexMissingError, IndexOutdatedError, IndexWriteError
from .files import file_digest

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


def current_build(index_dir: Path) -> str | None:
    """The build folder the manifest names, or None (no manifest, or one that cannot be read)."""
    try:
        build = json.loads((index_dir / "manifest.json").read_text(encoding="utf-8")).get("build")
    except (OSError, ValueError, AttributeError):
        return None
    return build if isinstance(build, str) else None


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
