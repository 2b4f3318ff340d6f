"""Transcript: a chat read back as turns, and written as Markdown with citations.

The chat window's history is a list of Gradio messages whose HTML ``qa.render`` made: a question keeps
its text in ``data-q`` (``render.asked_question``), an answer or a "not found" reply what it showed in
``data-shown`` (``render.reply_shown``: the ``ask --json`` answer, the passages, how the question was
understood). ``turns`` pairs them up; the feedback buttons (``qa.chat``) find the reply they rate with
it, and ``markdown`` writes the conversation as a file to keep or share: each question, how it was
understood, the quote and its citation (file, page, paragraph, characters), the other sources.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from . import render as R

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|!~$])")
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Turn:
    """One question and its reply: ``history`` the questions before it (oldest first), ``reply`` the
    index of the reply in the chat (None: none yet), ``shown`` what an answer reply showed (None for an
    error or a notice), ``text`` the reply as plain text."""

    question: str
    history: tuple[str, ...]
    reply: int | None = None
    shown: dict | None = None
    text: str = ""


def turns(history: list) -> list[Turn]:
    """The turns of a chat history, oldest first; messages before the first question are left out."""
    out: list[Turn] = []
    for i, message in enumerate(history if isinstance(history, list) else []):
        question = R.asked_question(message)
        if question is not None:
            out.append(Turn(question, tuple(t.question for t in out)))
        elif out and out[-1].reply is None and isinstance(message, dict) and message.get("role") == "assistant":
            text = " ".join(html.unescape(_TAG.sub(" ", R.message_html(message))).split())
            out[-1] = Turn(out[-1].question, out[-1].history, i, R.reply_shown(message), text)
    return out


def md(text: str) -> str:
    """``text`` on one line, Markdown's special characters escaped, so it reads as written."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def cite(p: dict, start: int | None = None, end: int | None = None, page: int | None = None) -> str:
    """A passage's citation: 《title》, file, page, paragraph and characters (the quote's when given)."""
    start, end = (p.get("start"), p.get("end")) if start is None else (start, end)
    page = p.get("page") if page is None else page
    parts = [f"《{md(p.get('title') or p.get('doc_id', ''))}》", f"`{str(p.get('doc_id', '')).replace('`', '')}`",
             *([f"p. {page}"] if page is not None else []), f"¶ {p.get('paragraph')}", f"characters {start}–{end}"]
    return ", ".join(parts)


def _turn(n: int, t: Turn) -> list[str]:
    """The Markdown lines of one turn."""
    lines = [f"## {n}. {md(t.question)}", ""]
    s = t.shown
    if s is None:
        return lines + [f"*{md(t.text) or '(no reply)'}*", ""]
    if s.get("understood_as"):
        lines += [f"理解为 / Understood as: {md(s['understood_as'])}", ""]
    a, passages = s.get("answer"), [p for p in s.get("passages") or [] if isinstance(p, dict)]
    if a:
        lines += [f"> {md(a['quote'])}", ""]
        quoted = next((p for p in passages if p.get("passage_id") == a.get("passage_id")), {"doc_id": a["doc_id"]})
        lines += [f"— {cite(quoted, a['start'], a['end'], a.get('page'))}", ""]
        others = [p for p in passages if p is not quoted]
        label = "Other sources / 其他來源"
    else:
        lines += ["*Not found in the documents. / 文件中沒有找到答案。*", ""]
        others, label = passages, "Closest passages / 可能相關"
    if others:
        lines += [f"{label}:", ""] + [f"{i}. {cite(p)}" for i, p in enumerate(others, 1)] + [""]
    return lines


def markdown(history: list, title: str = "對話 / Conversation") -> str:
    """The chat as Markdown: a heading, then each turn (``_turn``); '' for a chat with no question."""
    ts = turns(history)
    if not ts:
        return ""
    return "\n".join([f"# {md(title)}", ""] + [line for n, t in enumerate(ts, 1) for line in _turn(n, t)])


def write_markdown(history: list, folder: str | Path | None = None, keep_s: float = 3600.0) -> Path | None:
    """The chat's Markdown written to ``FOLDER/<hash>/conversation.md`` (the system's temp folder by
    default; the same chat gives the same file), or None for a chat with no question. Every reply
    writes one, so the files of other chats older than ``keep_s`` seconds are removed (a download
    button offers the latest file of its chat, written at its latest reply)."""
    text = markdown(history)
    if not text:
        return None
    base = Path(folder) if folder is not None else Path(tempfile.gettempdir()) / "qa-conversations"
    path = base / hashlib.sha256(text.encode("utf-8")).hexdigest()[:16] / "conversation.md"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)  # whole or not at all, when two sessions write the same chat at once
    cutoff = time.time() - keep_s
    for old in base.iterdir():
        try:
            if old != path.parent and old.is_dir() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:  # another session removed it first
            pass
    return path
