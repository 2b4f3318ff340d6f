"""Documents view: the app's handlers to add documents (several at once, dragged in), list what the
index holds and remove documents, each update shown stage by stage (reading, OCR, embedding).

The work is ``qa.uploads.update``; these handlers turn its progress into Gradio's progress bar and its
report, or its one-line error, into the status line; a traceback never reaches the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import catalog
from . import render as R
from .config import Config
from .errors import QAError
from .ingest import READ_SUFFIXES
from .pipeline import Pipeline, PipelineHolder
from .uploads import MIB, stage_label, update

log = logging.getLogger("qa.app")

UPLOAD_TYPES = list(READ_SUFFIXES)  # offered by the file picker: every kind a scan reads
FAILED = "更新失敗，索引未變。Updating the documents failed; the index is as it was."


def summary(pipeline: Pipeline) -> str:
    """The line under the title: how many documents and passages, and the encoder."""
    enc = pipeline.manifest.get("encoder", {}).get("name", "?")
    return (
        f"在 {len(pipeline.documents)} 篇文件、{len(pipeline.passages)} 個段落中檢索，逐字引用原文。"
        f" Answers quote the documents verbatim · encoder {R.esc(enc)}"
    )


def limits_note(config: Config) -> str:
    """What may be uploaded under ``config`` (``upload.*``, ``read.max_pages``), as HTML for the documents view."""
    kinds, up = " ".join(READ_SUFFIXES), config.upload
    return (f'<p class="qa-limits">可拖入多個檔案 Drop or pick several files ({R.esc(kinds)}) · '
            f'{up.files} 個以內 at most {up.files} files, {up.file_bytes / MIB:g} MiB each, '
            f'{up.total_bytes / MIB:g} MiB in all · PDF: first {config.read.max_pages} pages read</p>')


def _size(n: int | None) -> str:
    """A file size for the table."""
    if n is None:
        return "–"
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{max(1, round(n / 1024))} KiB"


def render_documents(docs: Sequence[catalog.DocInfo]) -> str:
    """The documents table: name, type, pages, passages, size, and warnings or why a file is skipped."""
    rows = []
    for d in docs:
        notes = ([f"skipped: {d.skipped}"] if d.skipped else []) + list(d.warnings)
        note = "<br>".join(R.esc(n) for n in notes)
        cls = ' class="qa-skipped"' if d.skipped else ""
        rows.append(f"<tr{cls}><td class=\"qa-doc-name\">{R.esc(d.name)}</td><td>{R.esc(d.type)}</td>"
                    f"<td>{d.pages or '–'}</td><td>{d.passages}</td><td>{_size(d.size)}</td><td>{note}</td></tr>")
    head = "<tr><th>文件 Name</th><th>類型 Type</th><th>頁 Pages</th><th>段落 Passages</th><th>大小 Size</th><th>說明 Notes</th></tr>"
    return f'<table class="qa-docs-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def render_status(lines: Sequence[str], kind: str = "info") -> str:
    """The status of the last update, one line each."""
    body = "<br>".join(R.esc(line) for line in lines)
    return f'<div class="qa-status qa-{kind}">{body}</div>' if lines else ""


class DocumentHandlers:
    """The documents view's handlers, around the ``PipelineHolder`` the chat shares."""

    def __init__(self, holder: PipelineHolder):
        self.holder = holder

    def documents(self) -> list[catalog.DocInfo]:
        """Every file of the live index's corpus, as ``python -m qa docs`` lists them."""
        return catalog.list_documents(self.holder.pipeline.index_dir)

    def view(self, status: str = "") -> tuple[str, str, dict, str]:
        """(status, documents table, remove-picker update, header line) of the index as it is now."""
        import gradio as gr

        docs = self.documents()
        names = [d.name for d in docs]
        return (status, render_documents(docs), gr.update(choices=names, value=[]),
                summary(self.holder.pipeline))

    def _run(self, progress: Callable | None, **change: Any) -> tuple[str, str, dict, str]:
        """``qa.uploads.update`` with Gradio's progress bar, its report or error as the status."""
        def tick(stage: str, done: int, total: int) -> None:
            if progress is not None:
                progress((done, max(total, 1)), desc=stage_label(stage))

        try:
            lines = update(self.holder, progress=tick, **change).lines()
            failed = any(line.startswith("✗") for line in lines)
            return self.view(render_status(lines or ["沒有變更 nothing changed"], "error" if failed else "info"))
        except QAError as exc:
            return self.view(render_status([str(exc)], "error"))
        except Exception:  # noqa: BLE001 - one line on the page, the traceback in the log
            log.exception("updating the documents failed")
            return self.view(render_status([FAILED], "error"))

    def upload(self, files: Sequence[str] | None, progress: Callable | None = None) -> tuple:
        """Add the uploaded files (paths) to the corpus and index them: the view's outputs and an emptied picker."""
        paths = [Path(f if isinstance(f, str) else getattr(f, "path", "")) for f in files or []]
        if not paths:
            return (None, *self.view())
        return (None, *self._run(progress, add=paths))

    def remove(self, names: Sequence[str] | None, progress: Callable | None = None) -> tuple[str, str, dict, str]:
        """Delete the picked documents from the corpus and the index."""
        names = [n for n in names or [] if isinstance(n, str)]
        if not names:
            return self.view(render_status(["請先選擇文件 Pick the documents to remove first"], "error"))
        return self._run(progress, remove=names)

    def reindex(self, progress: Callable | None = None) -> tuple[str, str, dict, str]:
        """Rebuild the index from the corpus folder as it is on disk."""
        return self._run(progress)
