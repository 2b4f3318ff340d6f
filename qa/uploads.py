"""Uploads: files added to (or removed from) the corpus of a running server, its index rebuilt beside
the live one and swapped in whole once it is complete.

``update`` copies the files that pass ``check_uploads`` into the corpus folder the index was built
from (``qa.catalog``), rebuilds (only new passages are embedded, unchanged files are not read again;
the store writes the new index into a temporary folder and swaps it in), and then points the
``PipelineHolder`` at the new pipeline, so the chat and the HTTP API answer from it at once. Until
then every question is answered from the old index. A file refused here, or skipped by the build (an
encrypted PDF, say), is reported and the others are indexed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import catalog
from .build import BuildReport, Progress
from .config import Config, SplitConfig, UploadConfig
from .errors import CorpusError
from .ingest import READ_SUFFIXES
from .pipeline import Pipeline, PipelineHolder

MIB = 1024 * 1024


def describe_limits(config: Config) -> str:
    """The upload limits of ``config`` in one line (``upload.*``, ``read.max_pages``), as errors state them."""
    up = config.upload
    return (f"limits: {up.files} files at a time, {up.file_bytes / MIB:g} MiB each, {up.total_bytes / MIB:g} MiB "
            f"in all; the first {config.read.max_pages} pages of a PDF are read")

@dataclass
class UpdateReport:
    """What an update did: files copied in (``added``: name, 'added' | 'replaced' | 'unchanged'), refused
    before copying (name, why), removed, and the build's report (None when nothing was rebuilt)."""

    added: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    build: BuildReport | None = None

    def lines(self) -> list[str]:
        """One line per file, then the build's counts: what the app shows after an update."""
        skipped = dict(self.build.skipped) if self.build else {}
        warned: dict[str, list[str]] = {}
        for name, what in self.build.warnings if self.build else []:
            warned.setdefault(name, []).append(what)
        out = []
        for name, state in self.added:
            if name in skipped:
                out.append(f"✗ {name}: skipped: {skipped[name]}")
            else:
                out.append(f"✓ {name}: {state}" + "".join(f"; {w}" for w in warned.get(name, [])))
        out += [f"✗ {name}: {why}" for name, why in self.refused]
        out += [f"✓ {name}: removed" for name in self.removed]
        if self.build:
            b = self.build
            out.append(f"indexed {b.documents} documents, {b.passages} passages ({b.embedded} embedded, "
                       f"{b.reused} reused) in {b.seconds:.1f} s")
        return out

def check_uploads(files: Sequence[Path], limits: UploadConfig = UploadConfig()) -> tuple[list[Path], list[tuple[str, str]]]:
    """The files an upload may copy into the corpus, and (name, why) of each it may not: an unsupported
    type, a hidden name, a second file of the same name, a file over the size limits or past the count."""
    ok: list[Path] = []
    refused: list[tuple[str, str]] = []
    total = 0
    for f in files:
        name = f.name
        try:
            size = f.stat().st_size
        except OSError as exc:
            refused.append((name, f"cannot be read ({exc.strerror or exc})"))
            continue
        if not name.lower().endswith(READ_SUFFIXES):
            why = f"not a supported file type; only {', '.join(READ_SUFFIXES)} files are read"
        elif name.startswith("."):
            why = "a hidden file name (starting with '.') is not read; rename it"
        elif any(g.name == name for g in ok):
            why = "another file of this upload has the same name"
        elif size > limits.file_bytes:
            why = f"{size / MIB:.1f} MiB, over the limit of {limits.file_bytes / MIB:g} MiB a file"
        elif len(ok) >= limits.files:
            why = f"over the limit of {limits.files} files an upload"
        elif total + size > limits.total_bytes:
            why = f"the upload would pass {limits.total_bytes / MIB:g} MiB in all; add it in another upload"
        else:
            ok.append(f)
            total += size
            continue
        refused.append((name, why))
    return ok, refused

def corpus_folder(pipeline: Pipeline) -> Path:
    """The corpus folder the pipeline's index was built from, where uploads go; ``CorpusError`` when
    the index was built from a single file or a docs .jsonl, or its folder is gone."""
    root = pipeline.corpus_path
    if root is None or not root.is_dir():
        where = "unknown" if root is None else repr(str(root))
        raise CorpusError(f"documents can be added and removed only when the index was built from a folder "
                          f"(its corpus is {where}); start the app with --corpus FOLDER")
    return root

def update(holder: PipelineHolder, add: Sequence[Path] = (), remove: Sequence[str] = (),
           progress: Progress | None = None) -> UpdateReport:
    """Copy ``add`` into the corpus, delete ``remove`` from it, rebuild the index beside the live one and
    swap the holder to it; with neither, rebuild from the corpus as it is (re-index). The files are
    checked against the live pipeline's ``config.upload`` limits.

    ``progress(stage, done, total)``: 'read', 'ocr', 'embed', 'index', then 'ready'. Raises ``CorpusError``
    (nothing changed) when the index would be left without a document; a failed build removes the files
    it added, puts back the ones it removed and leaves the live index as it was."""
    with holder.lock:
        old = holder.pipeline
        corpus = corpus_folder(old)
        report = UpdateReport()
        ok, report.refused = check_uploads([Path(f) for f in add], old.config.upload)
        if add and not ok and not remove:
            return report  # nothing to copy: the index stays as it is
        with catalog.changing(corpus, remove, adding=[f.name for f in ok]) as change:
            if progress:
                progress("read", 0, 1)
            if ok:
                change.add(ok)
            new, report.build = Pipeline.build(corpus, old.index_dir, old.encoder, SplitConfig.of_index(old.manifest),
                                               progress, old.config)
        report.added, report.removed = change.added, change.removed
        new.warm()
        holder.pipeline = new
        if progress:
            progress("ready", 1, 1)
        return report

def stage_label(stage: str) -> str:
    """A build stage as the app names it."""
    return {"read": "讀取 reading", "ocr": "文字辨識 OCR", "embed": "嵌入 embedding", "index": "寫入索引 writing index",
            "ready": "完成 ready"}.get(stage, stage)
