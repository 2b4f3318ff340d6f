"""Evaluate: run a question set through the pipeline and score retrieval, quotes and abstention.

A question line is ``{"id", "question", "answers": [...], "doc_id"?, "paragraph_index"?, "history"?}``;
an empty ``answers`` list means the corpus does not answer it; ``history`` lists the conversation's
earlier questions, oldest first, and makes the line a *follow-up* asked with them. A retrieved passage is
a *hit* when its folded text contains a folded answer string and, when the gold
``doc_id`` is given, it comes from that document and (with ``paragraph_index``)
overlaps that paragraph (paragraphs are the document text split on blank lines).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import QAError, QuestionError
from .files import NotRegularFileError, decode_line, iter_lines, open_regular
from .kinds import KINDS, asked_kind, expressions, states
from .schema import MODES, Answer, Document, Passage
from .text import fold

HIT_KS = (1, 3, 5, 10)


@dataclass(frozen=True)
class EvalQuestion:
    """One evaluation question; ``answers == ()`` means unanswerable."""

    id: str
    question: str
    answers: tuple[str, ...]
    doc_id: str | None = None
    paragraph_index: int | None = None
    lang: str | None = None
    history: tuple[str, ...] = ()


@dataclass
class Outcome:
    """What one question got in one mode: the rank of the first hit (None: no hit in k)."""

    question: EvalQuestion
    mode: str
    first_hit: int | None
    abstained: bool
    quote_ok: bool | None
    latency_ms: float
    answers_found: float
    confidence: float
    top_score: float
    kind_ok: bool | None = None
    quote_chars: int = 0


@dataclass
class QuestionSet:
    """Questions read from a file, and the lines that could not be used."""

    questions: list[EvalQuestion] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def load_questions(path: str | Path) -> QuestionSet:
    """Read a questions JSON-lines file; bad lines (not UTF-8, not JSON, bad fields) are reported by number, not fatal."""
    path = Path(path)
    try:
        fh = open_regular(path)  # never a FIFO or a device: they would block or never end
    except FileNotFoundError:
        raise QuestionError(f"question file {str(path)!r} does not exist") from None
    except NotRegularFileError as exc:
        raise QuestionError(f"question file {str(path)!r} is a {exc.kind}, not a file; pass a .jsonl file of questions") from None
    except OSError as exc:
        raise QuestionError(f"cannot read question file {str(path)!r} ({exc.strerror or exc})") from None
    out = QuestionSet()
    seen: set[str] = set()
    with fh:
        for lineno, raw in iter_lines(fh):
            try:
                line = decode_line(raw)
                if line.strip():
                    q = _question(json.loads(line), lineno, seen)
                    out.questions.append(q)
                    seen.add(q.id)
            except (ValueError, KeyError, TypeError) as exc:
                out.errors.append((lineno, f"{type(exc).__name__}: {exc}"))
    return out


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type: 'a number', 'a list', 'null', ..."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return {int: "a number", float: "a number", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def _question(r: object, lineno: int, seen: set[str]) -> EvalQuestion:
    """One question line's fields as an ``EvalQuestion``; raise ``ValueError``/``KeyError``/``TypeError`` saying what is wrong."""
    if not isinstance(r, dict):
        raise TypeError(f"expected a JSON object, not {_json_type(r)}")
    q = r["question"]
    answers = r.get("answers", [])
    if not isinstance(q, str):
        raise TypeError(f"question must be text (a JSON string), not {_json_type(q)}: {json.dumps(q, ensure_ascii=False)}")
    if not q.strip():
        raise ValueError("empty question")
    if not isinstance(answers, list) or not all(isinstance(a, str) and a for a in answers):
        raise ValueError("answers must be a list of non-empty strings")
    qid = str(r.get("id", f"line{lineno}"))
    if qid in seen:
        raise ValueError(f"duplicate id {qid!r}")
    pi = r.get("paragraph_index")
    history = r.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, str) and h.strip() for h in history):
        raise ValueError("history must be a list of earlier questions (non-empty strings), oldest first")
    return EvalQuestion(qid, q, tuple(answers), r.get("doc_id"), int(pi) if pi is not None else None, r.get("lang"),
                        tuple(history))


def paragraph_span(text: str, index: int) -> tuple[int, int] | None:
    """(start, end) of paragraph ``index`` of ``text.split('\\n\\n')``."""
    start = 0
    for i, para in enumerate(text.split("\n\n")):
        if i == index:
            return start, start + len(para)
        start += len(para) + 2
    return None


def is_hit(q: EvalQuestion, p: Passage, docs: dict[str, Document]) -> bool:
    """Does passage ``p`` answer ``q`` (answer string inside, from the gold paragraph if known)?"""
    if not q.answers:
        return False
    if q.doc_id is not None and p.doc_id != q.doc_id:
        return False
    if q.doc_id is not None and q.paragraph_index is not None and q.doc_id in docs:
        span = paragraph_span(docs[q.doc_id].text, q.paragraph_index)
        if span and (p.end <= span[0] or p.start >= span[1]):
            return False
    folded = fold(p.text)
    return any(fold(a) in folded for a in q.answers)


def score_answer(q: EvalQuestion, a: Answer, docs: dict[str, Document], latency_ms: float) -> Outcome:
    """Turn one Answer into an Outcome."""
    flags = [is_hit(q, h.passage, docs) for h in a.hits]
    first = next((h.rank for h, ok in zip(a.hits, flags) if ok), None)
    quote_ok = None
    if q.answers and not a.abstained and first == 1:
        quote_ok = any(fold(x) in fold(a.quote.text) for x in q.answers)
    found = 0.0
    if q.answers:
        texts = [fold(h.passage.text) for h, ok in zip(a.hits, flags) if ok or q.doc_id is None]
        found = sum(any(fold(x) in t for t in texts) for x in q.answers) / len(q.answers)
    top = a.hits[0].score if a.hits else 0.0
    return Outcome(q, a.mode, first, a.abstained, quote_ok, latency_ms, found, a.confidence, top,
                   kind_answered(q, a), len(a.quote.text) if a.quote else 0)


def kind_answered(q: EvalQuestion, a: Answer) -> bool | None:
    """Does the quote state the kind of fact the question asks for (``qa.kinds``: a date for "when",
    a number for "how many", a name for "who", a place for "where")? None unless the question asks
    for one, its gold answer is of that kind and it was answered."""
    kind = asked_kind(q.question)
    if kind is None or a.abstained or not any(expressions(kind, x) for x in q.answers):
        return None
    return states(kind, a.quote.text, a.understood_as or a.question)


def summarize(outcomes: list[Outcome], k: int) -> dict:
    """Metrics of one mode (see README 'Evaluation' for each definition)."""
    ans = [o for o in outcomes if o.question.answers]
    una = [o for o in outcomes if not o.question.answers]
    out: dict = {"n": len(outcomes), "n_answerable": len(ans), "n_unanswerable": len(una)}
    for kk in HIT_KS:
        if kk <= k:
            out[f"hit@{kk}"] = _mean([o.first_hit is not None and o.first_hit <= kk for o in ans])
    out["mrr@10"] = _mean([1.0 / o.first_hit if o.first_hit and o.first_hit <= 10 else 0.0 for o in ans])
    out[f"recall@{k}"] = _mean([o.answers_found for o in ans])
    abstained = [o for o in outcomes if o.abstained]
    correct = sum(not o.question.answers for o in abstained)
    out["abstain_precision"] = correct / len(abstained) if abstained else (1.0 if not una else 0.0)
    out["abstain_recall"] = correct / len(una) if una else None
    out["abstained_unanswerable"] = correct
    out["wrongly_abstained"] = sum(bool(o.question.answers) for o in abstained)
    # what abstaining is for: questions answered with a passage that does not answer them
    out["answered_wrongly"] = sum(not o.abstained and (not o.question.answers or o.first_hit != 1) for o in outcomes)
    quotes = [o.quote_ok for o in ans if o.quote_ok is not None]
    out["quote_accuracy"] = _mean(quotes) if quotes else None
    out["quote_chars_mean"] = _mean(o.quote_chars for o in ans if o.quote_ok is not None) if quotes else None
    by_kind: dict[str, list[bool]] = {kind: [] for kind in KINDS}
    for o in outcomes:
        if o.kind_ok is not None:
            by_kind[asked_kind(o.question.question)].append(o.kind_ok)
    kinded = [ok for oks in by_kind.values() for ok in oks]
    out["kind_answered"] = _mean(kinded) if kinded else None
    for kind, oks in by_kind.items():
        out[f"kind_answered_{kind}"] = _mean(oks) if oks else None
        out[f"kind_n_{kind}"] = len(oks)
    lat = np.array([o.latency_ms for o in outcomes]) if outcomes else np.zeros(1)
    out["latency_ms_mean"] = float(lat.mean())
    out["latency_ms_p95"] = float(np.percentile(lat, 95))
    follow = [o for o in outcomes if o.question.history]
    if follow:  # only for sets with follow-ups, so the metrics of other sets read as before
        f_ans = [o for o in follow if o.question.answers]
        f_una = [o for o in follow if not o.question.answers]
        out["followup_n"] = len(follow)
        out["followup_hit@1"] = _mean(o.first_hit == 1 for o in f_ans)
        out["followup_wrongly_abstained"] = sum(o.abstained for o in f_ans)
        out["followup_abstain_recall"] = _mean(o.abstained for o in f_una) if f_una else None
    return out


def _mean(xs: Iterable) -> float:
    """Mean of booleans or numbers (0.0 for none)."""
    xs = [float(x) for x in xs]
    return sum(xs) / len(xs) if xs else 0.0


def evaluate(
    pipeline,
    questions: list[EvalQuestion],
    modes: Iterable[str] = ("hybrid",),
    k: int = 10,
    details: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[Outcome]]:
    """Ask every question in every mode; write one details line per (question, mode) as it goes.

    The pipeline is warmed first (``Pipeline.warm``), so the latencies are those of a running app and
    the first question does not carry the loading of word lists and dictionaries (2-3 s).
    """
    modes = list(modes)
    for m in modes:
        if m not in MODES:
            raise QuestionError(f"mode={m!r}; expected one of {', '.join(MODES)} or 'all'")
    pipeline.warm()
    results: dict[str, list[Outcome]] = {m: [] for m in modes}
    fh = details.open("w", encoding="utf-8") if details else None
    try:
        for n, q in enumerate(questions, 1):
            for m in modes:
                t0 = time.perf_counter()
                try:
                    a = pipeline.ask(q.question, k=k, mode=m, **({"history": q.history} if q.history else {}))
                except QAError:
                    continue
                ms = (time.perf_counter() - t0) * 1e3
                o = score_answer(q, a, pipeline.documents, ms)
                results[m].append(o)
                if fh:
                    fh.write(json.dumps(detail_line(q, a, o), ensure_ascii=False) + "\n")
                    fh.flush()
            if progress:
                progress(n, len(questions))
    finally:
        if fh:
            fh.close()
    return results


def detail_line(q: EvalQuestion, a: Answer, o: Outcome) -> dict:
    """The ``--details`` record of one question in one mode (with ``history`` and ``understood_as``
    for a follow-up)."""
    turns = {"history": list(q.history), "understood_as": a.understood_as} if q.history else {}
    return {
        "id": q.id, "question": q.question, **turns, "mode": a.mode, "answers": list(q.answers),
        "abstained": a.abstained, "quote": a.quote.text if a.quote else None,
        "first_hit": o.first_hit, "confidence": round(a.confidence, 4),
        "passages": [
            {"passage_id": h.passage.id, "doc_id": h.passage.doc_id, "text": h.passage.text,
             "start": h.passage.start, "end": h.passage.end, "score": round(h.score, 6)}
            for h in a.hits
        ],
    }


def format_table(summary: dict[str, dict], k: int) -> str:
    """A Markdown table of the main metrics, one column per mode."""
    rows = [f"hit@{x}" for x in HIT_KS if x <= k] + ["mrr@10", f"recall@{k}", "quote_accuracy", "quote_chars_mean",
            "kind_answered", *(f"kind_answered_{kind}" for kind in KINDS),
            "abstain_precision", "abstain_recall", "wrongly_abstained", "answered_wrongly", "latency_ms_mean",
            "latency_ms_p95", "n"]
    modes = list(summary)
    if any("followup_n" in summary[m] for m in modes):
        rows += ["followup_hit@1", "followup_wrongly_abstained", "followup_abstain_recall", "followup_n"]
    lines = ["| metric | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for r in rows:
        cells = []
        for m in modes:
            v = summary[m].get(r)
            cells.append("–" if v is None else f"{v:.3f}" if isinstance(v, float) and not r.startswith("latency") else f"{v:.1f}" if isinstance(v, float) else str(v))
        lines.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_group(outcomes: list[Outcome], key: Callable[[EvalQuestion], str | None]) -> dict[str, dict]:
    """hit@1 / hit@5 / n of answerable questions grouped by ``key`` (e.g. language)."""
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        g = key(o.question)
        if g and o.question.answers:
            groups.setdefault(g, []).append(o)
    return {g: {"n": len(v), "hit@1": _mean(o.first_hit == 1 for o in v),
                "hit@5": _mean(o.first_hit is not None and o.first_hit <= 5 for o in v)}
            for g, v in sorted(groups.items())}


def safe_name(text: str) -> str:
    """A file-name-safe version of a string."""
    return re.sub(r"[^\w.-]+", "_", text)[:80]
