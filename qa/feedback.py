"""Feedback: what users say about answers, kept beside the index, and the eval questions it makes.

A 👍 or 👎 on a reply (the app's chat, or ``POST /api/feedback``) is appended to the index's feedback
file (``store.feedback_path``: ``index/feedback.jsonl``, outside the build folders, so a rebuild keeps
it) as one JSON line::

    {"time": "2026-12-03T14:05:09+0800",
     "question": "它显示苏州2021年排名第几？", "history": ["哪份白皮书评估了中国城市区块链发展水平？"],
     "verdict": "down", "reason": "should_have_declined",
     "answer": {"quote", "passage_id", "doc_id", "start", "end", "page"},   # as ``ask --json``; null: declined
     "understood_as": "…",                                                 # null: read as it stands
     "passages": [{"rank", "passage_id", "doc_id", "title", "paragraph", "page", "start", "end", "score"}],
     "index_version": "build-20261203-140102-3fa2c1"}                     # the build that answered

``history`` holds the earlier questions, oldest first; ``verdict`` is "up", "down" or "withdrawn" (a
click taken back); ``reason`` (a "down" only, may be null) one of ``REASONS``; ``passages`` are the
passages shown, without their text. The file is only appended to: for one question and history, a later
record outranks an earlier one, and "withdrawn" takes back the verdicts given before it on that answer.

``export`` turns the records into question lines of ``qa eval`` (``qa.evaluate``):

- 👍 on an answer: its quote is the expected answer, from its document (``answers``, ``doc_id``);
- 👍 on a declined question, or 👎 "should have declined": an unanswerable question (``answers: []``);
- 👎 otherwise (wrong passage, wrong sentence, should have answered, no reason): the right answer is not
  known. The line is kept when a 👍 on another answer to the same question and history tells it; else it
  goes to the *to label* list with ``"answers": null``, which ``qa eval`` refuses until a person fills it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FeedbackError, IndexWriteError, QuestionError
from .files import NotRegularFileError, decode_line, iter_lines, open_regular
from .pipeline import clean_question
from .schema import Answer, Document

VERDICTS = ("up", "down", "withdrawn")
REASONS = {  # reason -> its label in the app
    "wrong_passage": "答錯段落 / Wrong passage",
    "wrong_sentence": "標錯句子 / Wrong sentence highlighted",
    "should_have_declined": "應該拒答 / Should have declined",
    "should_have_answered": "應該回答 / Should have answered",
}
DECLINE = "should_have_declined"
MAX_PASSAGES = 50  # passages one record may hold (the API's most k)
ANSWER_KEYS = ("quote", "passage_id", "doc_id", "start", "end", "page")
PASSAGE_KEYS = ("rank", "passage_id", "doc_id", "title", "paragraph", "page", "start", "end", "score")
TODO = ("fill in answers (strings the right passage holds) and doc_id, or answers [] when the documents do "
        "not answer it; then add the line to the eval file")


def shown(answer: Answer, index_version: str) -> dict:
    """What a reply showed, as a record holds it: the ``ask --json`` answer, how the question was
    understood, the passages without their text, and the index version that answered."""
    j = answer.to_json()
    return {"answer": j["answer"], "understood_as": answer.understood_as,
            "passages": [{k: p[k] for k in PASSAGE_KEYS} for p in j["passages"]], "index_version": index_version}


def _whole(x: object) -> bool:
    """An int that is not a bool."""
    return isinstance(x, int) and not isinstance(x, bool)


def _text(x: object, name: str) -> str:
    """A question (or earlier question) cleaned and capped as ``Pipeline.ask`` reads it."""
    try:
        return clean_question(x)[0]
    except QuestionError:
        raise FeedbackError(f'"{name}" must be a non-empty string') from None


def _answer(a: object, documents: Mapping[str, Document] | None) -> dict | None:
    """The answer rated, checked (against ``documents`` when given: its quote must be that document's text)."""
    if a is None:
        return None
    if not (isinstance(a, dict) and all(isinstance(a.get(k), str) for k in ("quote", "passage_id", "doc_id"))
            and _whole(a.get("start")) and _whole(a.get("end")) and (a.get("page") is None or _whole(a["page"]))
            and 0 <= a["start"] < a["end"] and a["quote"]):
        raise FeedbackError('"answer" must be null (declined) or the "answer" object of /api/ask: '
                            '{"quote", "passage_id", "doc_id", "start", "end", "page"}')
    if documents is not None:
        doc = documents.get(a["doc_id"])
        if doc is None or doc.text[a["start"]:a["end"]] != a["quote"]:
            raise FeedbackError(f"the quote is not characters {a['start']}-{a['end']} of {a['doc_id']!r} in this "
                                f"index (rebuilt since it was answered?); ask again and rate the new answer")
    return {k: a.get(k) for k in ANSWER_KEYS}


def _passages(ps: object, documents: Mapping[str, Document] | None) -> list[dict]:
    """The passages shown, checked, without their text (each of a document of the index, when given)."""
    if not isinstance(ps, list) or len(ps) > MAX_PASSAGES or not all(
            isinstance(p, dict) and isinstance(p.get("passage_id"), str) and isinstance(p.get("doc_id"), str)
            and all(_whole(p.get(k)) for k in ("rank", "start", "end")) for p in ps):
        raise FeedbackError(f'"passages" must be a list of at most {MAX_PASSAGES} passages of /api/ask '
                            '({"rank", "passage_id", "doc_id", "start", "end", …})')
    for p in ps:
        if documents is not None and p["doc_id"] not in documents:
            raise FeedbackError(f"passage {p['passage_id']!r} is of a document this index does not hold "
                                f"(rebuilt since it was answered?); ask again and rate the new answer")
    return [{k: p.get(k) for k in PASSAGE_KEYS} for p in ps]


def record(question: object, history: object, verdict: object, reason: object, reply: Mapping,
           documents: Mapping[str, Document] | None = None, now: float | None = None) -> dict:
    """One feedback record of ``verdict`` (and ``reason``) on ``reply`` (``shown``'s dict) to ``question``
    asked after ``history``; ``FeedbackError`` names a bad field, or an answer ``documents`` (the index's)
    do not hold."""
    if verdict not in VERDICTS:
        raise FeedbackError(f'"verdict" must be one of {", ".join(VERDICTS)}')
    if reason is not None and (verdict != "down" or reason not in REASONS):
        raise FeedbackError(f'"reason" goes with "verdict": "down" and is null or one of {", ".join(REASONS)}')
    if isinstance(history, str) or not isinstance(history, Sequence):
        raise FeedbackError('"history" must be a list of the earlier questions (strings), oldest first')
    understood, version = reply.get("understood_as"), reply.get("index_version")
    if not (understood is None or isinstance(understood, str)) or not isinstance(version, str):
        raise FeedbackError('"understood_as" must be null or a string, and "index_version" a string')
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)), "question": _text(question, "question"),
            "history": [_text(h, "history") for h in history], "verdict": verdict, "reason": reason,
            "answer": _answer(reply.get("answer"), documents), "understood_as": understood,
            "passages": _passages(reply.get("passages", []), documents), "index_version": version}


def append(path: str | Path, rec: dict) -> None:
    """Append ``rec`` to the feedback file as one line, under an exclusive lock so that the lines of
    writers at the same time never interleave. Only a regular file is written (a FIFO is refused, not
    waited on); a failure is an ``IndexWriteError`` that says what to fix."""
    line = (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0), 0o644)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise NotRegularFileError(os.fstat(fd).st_mode)
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
    except OSError as exc:
        raise IndexWriteError(f"cannot write the feedback file {str(path)!r} ({exc.strerror or exc}); make it a "
                              f"writable file in a writable index folder") from None


@dataclass
class FeedbackFile:
    """The records read from a feedback file, and the lines that could not be used: (line number, why)."""

    records: list[dict] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def _stored(r: object) -> dict:
    """A line's record, checked as ``record`` writes it (not against an index); ``ValueError`` says why not."""
    if not isinstance(r, dict):
        raise ValueError("expected a JSON object")
    try:
        return record(r.get("question"), r.get("history", []), r.get("verdict"), r.get("reason"), r) | {
            "time": str(r.get("time", ""))}
    except FeedbackError as exc:
        raise ValueError(str(exc)) from None


def read(path: str | Path) -> FeedbackFile:
    """Read a feedback file; a line that is not UTF-8, not JSON or not a record is reported by number and skipped."""
    try:
        fh = open_regular(path)
    except FileNotFoundError:
        raise FeedbackError(f"no feedback file {str(path)!r}: rate answers in the app (👍 / 👎) or with POST "
                            f"/api/feedback first, or name the file with --feedback FILE") from None
    except OSError as exc:
        raise FeedbackError(f"cannot read the feedback file {str(path)!r} ({exc.strerror or exc})") from None
    out = FeedbackFile()
    with fh:
        for lineno, raw in iter_lines(fh):
            try:
                line = decode_line(raw)
                if line.strip():
                    out.records.append(_stored(json.loads(line)))
            except ValueError as exc:
                out.errors.append((lineno, str(exc)))
    return out


@dataclass
class Export:
    """Eval question lines (``qa.evaluate``'s format) and the lines a person must label first."""

    questions: list[dict] = field(default_factory=list)
    to_label: list[dict] = field(default_factory=list)


def _same(a: dict | None, b: dict | None) -> bool:
    """Do two records rate the same answer (the same span of the same document, or both declined)?"""
    return (a is None) == (b is None) and (a is None or (a["doc_id"], a["start"], a["end"]) == (b["doc_id"], b["start"], b["end"]))


def _line(r: dict, answer: dict | None, source: dict, expected: bool = True) -> dict:
    """The eval line of record ``r``: expected ``answer`` (None: unanswerable), as rated in record ``source``."""
    qid = "fb-" + hashlib.sha1(json.dumps([r["question"], r["history"]], ensure_ascii=False).encode()).hexdigest()[:12]
    out: dict = {"id": qid, "question": r["question"], **({"history": r["history"]} if r["history"] else {})}
    if not expected:
        out |= {"answers": None, "doc_id": None, "todo": TODO, "got": r["answer"], "understood_as": r["understood_as"],
                "passages": r["passages"]}
    elif answer is None:
        out["answers"] = []
    else:
        out |= {"answers": [answer["quote"]], "doc_id": answer["doc_id"], "passage_id": answer["passage_id"],
                "span": [answer["start"], answer["end"]], "page": answer["page"]}
    return out | {"source": "feedback", "verdict": r["verdict"], "reason": r["reason"],
                  "index_version": source["index_version"], "time": r["time"]}


def export(records: Iterable[dict]) -> Export:
    """Eval lines from feedback records (oldest first), one per question and history: the rules are in
    this module's docstring."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        kept = groups.setdefault((r["question"], tuple(r["history"])), [])
        if r["verdict"] == "withdrawn":
            kept[:] = [x for x in kept if not _same(x["answer"], r["answer"])]
        else:
            kept.append(r)
    out = Export()
    for kept in groups.values():
        if not kept:
            continue
        last = kept[-1]
        if last["verdict"] == "up" or last["reason"] == DECLINE:
            out.questions.append(_line(last, None if last["reason"] == DECLINE else last["answer"], last))
            continue
        right = next((x for x in reversed(kept) if x["verdict"] == "up" and x["answer"] is not None
                      and not _same(x["answer"], last["answer"])), None)
        if right is not None:
            out.questions.append(_line(last, right["answer"], right))
        else:
            out.to_label.append(_line(last, None, last, expected=False))
    return out


def write_lines(path: str | Path, rows: Sequence[dict]) -> None:
    """Write ``rows`` as JSON lines to ``path``, replacing it whole (written beside it, then renamed)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
