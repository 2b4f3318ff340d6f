"""API: the JSON bodies of ``POST /api/ask`` and the OpenAI-compatible ``POST /v1/chat/completions``.

Plain functions from a decoded request body to a response body, so the HTTP layer stays a thin shell:
``ask`` returns what ``python -m qa ask --json`` prints (with ``understood_as`` for a follow-up read in
context); ``chat_completion`` takes ``messages`` (the last user message is the question, the user
messages before it its history), answers with the quote and its citation as the reply's content and
the structured citations in ``citations``; ``chat_chunks`` gives the same as server-sent events;
``feedback`` appends a 👍 or 👎 on an answer to the index's feedback file (``qa.feedback``). A bad body
raises ``ApiError`` (an HTTP status and a message); ``error_body`` is its JSON.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from . import feedback as fb
from . import store
from .errors import FeedbackError, QAError
from .pipeline import PipelineHolder
from .schema import MODES, Answer

MAX_K = 50  # passages one call may ask for
MAX_HISTORY = 20  # earlier questions one call may send (only the latest few are read)


class ApiError(Exception):
    """A request the API refuses: ``status`` (400, 422; 500 when the feedback file cannot be written)
    and a message that says what to send or fix."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def error_body(message: str, kind: str = "invalid_request_error") -> dict:
    """The JSON of a refused request (OpenAI's shape, which plain clients read as well)."""
    return {"error": {"message": message, "type": kind}}


def _object(body: object) -> dict:
    """``body`` as a JSON object, or an ``ApiError``."""
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object")
    return body


def ask_args(body: object) -> tuple[str, list[str], int, str]:
    """(question, history, k, mode) of an ``/api/ask`` body ``{"question", "history"?, "k"?, "mode"?}``."""
    body = _object(body)
    question, history = body.get("question"), body.get("history", [])
    k, mode = body.get("k", 5), body.get("mode", "hybrid")
    if not isinstance(question, str) or not question.strip():
        raise ApiError('"question" must be a non-empty string')
    if not isinstance(history, list) or not all(isinstance(h, str) for h in history) or len(history) > MAX_HISTORY:
        raise ApiError(f'"history" must be a list of at most {MAX_HISTORY} earlier questions (strings), oldest first')
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K:
        raise ApiError(f'"k" must be a whole number from 1 to {MAX_K}')
    if mode not in MODES:
        raise ApiError(f'"mode" must be one of {", ".join(MODES)}')
    return question, history, k, mode


def _answer(pipeline: Any, question: str, history: list[str], k: int, mode: str) -> Answer:
    """``pipeline.ask``, its refusals as ``ApiError`` (422)."""
    try:
        return pipeline.ask(question, k=k, mode=mode, history=history)
    except QAError as exc:
        raise ApiError(str(exc), 422) from None


def ask(pipeline: Any, body: object) -> dict:
    """The ``/api/ask`` response: the ``ask --json`` object of the question read with its history."""
    question, history, k, mode = ask_args(body)
    return _answer(pipeline, question, history, k, mode).to_json()


def chat_args(body: object) -> tuple[str, list[str], int, str, str]:
    """(question, history, k, mode, model) of a chat-completions body: the last message must be the user's."""
    body = _object(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
        raise ApiError('"messages" must be a non-empty list of {"role", "content": string}')
    if messages[-1].get("role") != "user":
        raise ApiError('the last message must have "role": "user" (the question)')
    users = [m["content"] for m in messages if m.get("role") == "user" and m["content"].strip()]
    question, history, k, mode = ask_args({"question": messages[-1]["content"], "history": users[:-1][-MAX_HISTORY:],
                                           "k": body.get("k", 5), "mode": body.get("mode", "hybrid")})
    model = body.get("model", "qa")
    return question, history, k, mode, model if isinstance(model, str) else "qa"


def citations(answer: Answer) -> list[dict]:
    """The quoted passage (first, with the quote's span) and the other passages found."""
    out = []
    for h in answer.hits:
        c = {"passage_id": h.passage.id, "doc_id": h.passage.doc_id, "title": h.passage.title,
             "paragraph": h.passage.paragraph, "start": h.passage.start, "end": h.passage.end}
        if h.rank == 1 and answer.quote is not None:
            c |= {"quote": answer.quote.text, "quote_start": h.passage.start + answer.quote.start,
                  "quote_end": h.passage.start + answer.quote.end}
        out.append(c)
    return out


def reply_text(answer: Answer) -> str:
    """The reply's content: how a follow-up was understood, then the quote and its citation, or why none."""
    lines = [f"理解为 / Understood as: {answer.understood_as}"] if answer.understood_as else []
    if answer.abstained or answer.best is None:
        lines.append("The documents do not seem to answer this question. / 文档中似乎没有这个问题的答案。")
    else:
        p, q = answer.best.passage, answer.quote
        lines += [f"「{q.text}」", f"— {p.title}, {p.doc_id}, paragraph {p.paragraph}, "
                                  f"characters {p.start + q.start}–{p.start + q.end}"]
    return "\n".join(lines)


def chat_completion(pipeline: Any, body: object) -> dict:
    """The ``/v1/chat/completions`` response (not streamed)."""
    question, history, k, mode, model = chat_args(body)
    a = _answer(pipeline, question, history, k, mode)
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": reply_text(a)},
                                         "finish_reason": "stop"}],
            "citations": citations(a), "qa": a.to_json()}


def chat_chunks(pipeline: Any, body: object) -> Iterator[str]:
    """The streamed response: server-sent ``data:`` lines of ``chat.completion.chunk`` objects (the
    role, the content, then the finish with ``citations``) and ``data: [DONE]``. Refusals are raised
    before the first line."""
    done = chat_completion(pipeline, body)
    base = {"id": done["id"], "object": "chat.completion.chunk", "created": done["created"], "model": done["model"]}
    deltas = [({"role": "assistant"}, None, {}), ({"content": done["choices"][0]["message"]["content"]}, None, {}),
              ({}, "stop", {"citations": done["citations"], "qa": done["qa"]})]

    def gen() -> Iterator[str]:
        for delta, finish, extra in deltas:
            chunk = base | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]} | extra
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    return gen()


def feedback(pipeline: Any, body: object) -> dict:
    """The ``/api/feedback`` response: the record appended to the index's feedback file. The body is the
    ``/api/ask`` response rated (``question``, ``answer``, ``passages``, ``understood_as``) with the
    ``history`` it was asked with, a ``verdict`` ("up", "down" or "withdrawn") and, with "down", a
    ``reason`` or null. The answer must be this index's: its quote the text at its span."""
    body = _object(body)
    question, history, _, _ = ask_args({"question": body.get("question"), "history": body.get("history", [])})
    reply = {k: body.get(k) for k in ("answer", "understood_as")} | {
        "passages": body.get("passages", []), "index_version": store.index_version(pipeline.manifest)}
    try:
        rec = fb.record(question, history, body.get("verdict"), body.get("reason"), reply, pipeline.documents)
    except FeedbackError as exc:
        raise ApiError(str(exc)) from None
    try:
        fb.append(pipeline.feedback_path, rec)
    except QAError as exc:
        raise ApiError(str(exc), 500) from None
    return rec


def routes(pipeline: Any) -> list:
    """Starlette routes of ``POST /api/ask``, ``POST /api/feedback`` and ``POST /v1/chat/completions``
    (``"stream": true`` streams), served in front of the app's own; every error is JSON with a message. ``pipeline``: a
    pipeline, or the ``PipelineHolder`` the app swaps after an upload (each request reads it once)."""
    holder = PipelineHolder.of(pipeline)
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def call(request: Request, fn: Any) -> Any:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse(error_body("the request body must be JSON"), status_code=400)
        try:
            if fn is chat_completion and isinstance(body, dict) and body.get("stream") is True:
                return StreamingResponse(await run_in_threadpool(chat_chunks, holder.pipeline, body),
                                         media_type="text/event-stream")
            return JSONResponse(await run_in_threadpool(fn, holder.pipeline, body))
        except ApiError as exc:
            return JSONResponse(error_body(str(exc)), status_code=exc.status)

    async def api_ask(request: Request) -> Any:
        return await call(request, ask)

    async def api_chat(request: Request) -> Any:
        return await call(request, chat_completion)

    async def api_feedback(request: Request) -> Any:
        return await call(request, feedback)

    return [Route("/api/ask", api_ask, methods=["POST"]), Route("/api/feedback", api_feedback, methods=["POST"]),
            Route("/v1/chat/completions", api_chat, methods=["POST"])]
