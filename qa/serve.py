"""Serving the chat app safely: the checks between a client (or the command line) and the handlers.

Three pieces, each ready before gradio is imported (gradio is imported only where used, so that
``python app.py --help`` is quick and a bad address is found before gradio reads it):

- ``RequestGuard``: ASGI middleware that refuses a body over ``MAX_REQUEST_BYTES`` (an upload: over
  ``upload.total_bytes`` + ``UPLOAD_FRAMING``) with a JSON 413 before anything parses it, and turns an
  exception a route lets escape into a JSON 400 and one log line instead of uvicorn's traceback.
- ``request_problem`` and ``GuardedBlocksMixin``: a call of the API with malformed inputs (a
  missing input, a number for the question, a string for k) gets a clear ``gr.Error`` and one log
  line, never Gradio's traceback.
- ``OneLineParser``, ``resolve_address``, ``listen_problem`` and ``gradio_env`` (``qa.address``, re-exported
  here): the host and port checked by binding them, before gradio is imported; a bad one is a one-line
  ``error: ...`` and exit status 2. ``serve`` then serves until interrupted.
"""

from __future__ import annotations

import argparse
import html
import inspect
import json
import logging
import math
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from .address import DEFAULT_HOST, DEFAULT_PORT, OneLineParser, gradio_env, listen_problem  # noqa: F401
from .address import resolve_address  # noqa: F401 - the app imports it from here
from .config import Config
from .pipeline import MAX_QUESTION_CHARS
from .uploads import describe_limits

log = logging.getLogger("qa.app")  # the app's log: its lines all under one name, wherever made

# A request body larger than this is refused before it is parsed. The browser sends the whole chat
# history with each question (about 5 kB an exchange), so this allows several hundred exchanges.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
UPLOAD_PATHS = ("/gradio_api/upload",)  # Gradio's upload route: its own limit, the files of one upload and their framing
UPLOAD_FRAMING = 1024 * 1024  # an upload's request: upload.total_bytes of files plus their multipart framing
DRAIN_BYTES = 64 * 1024 * 1024  # a refused body is read and dropped up to this size, so the client sees the 413
SHORT_REPR = 60  # characters of a bad value quoted in an error message


# ---- quoting bad values ---------------------------------------------------------------


def short(value: object) -> str:
    """``repr(value)`` on one line, cut to SHORT_REPR characters, to quote a bad value in a message."""
    if isinstance(value, str) and len(value) > 4 * SHORT_REPR:
        value = value[: 4 * SHORT_REPR]  # not the repr of all of a huge string
    text = " ".join(repr(value).split())
    return text if len(text) <= SHORT_REPR else text[: SHORT_REPR - 1] + "…"


def _printable(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters, anything unprintable (a newline, say) shown as '?', for a
    log line."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def one_line(exc: BaseException) -> str:
    """An exception as ``Type: first line of its message``, for a log line or an error reply."""
    message = getattr(exc, "message", None) or str(exc)
    first = next((line.strip() for line in str(message).splitlines() if line.strip()), "")
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"


def is_number(value: object) -> bool:
    """True for an int (not a bool) or a finite float."""
    return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and math.isfinite(value))


# ---- malformed calls of the API -------------------------------------------------------


def input_problem(block: Any, value: object) -> str | None:
    """What is wrong with ``value`` as the raw API value of input component ``block``, or None.

    Checks only what the app's own inputs need, before Gradio's preprocessing (which prints a
    traceback for each bad value, and turns a number into a question as readily as text)."""
    import gradio as gr

    if isinstance(block, gr.Textbox):
        return None if value is None or isinstance(value, str) else "expected text"
    if isinstance(block, gr.Slider):
        if is_number(value) and block.minimum <= value <= block.maximum:
            return None
        return f"expected a number from {block.minimum:g} to {block.maximum:g}"
    if isinstance(block, gr.Radio):
        choices = [c[1] if isinstance(c, (tuple, list)) else c for c in block.choices]
        if isinstance(value, str) and value in choices:
            return None
        return f"expected one of {', '.join(repr(c) for c in choices)}"
    if isinstance(block, gr.Chatbot):
        if value is None or (isinstance(value, list) and all(isinstance(m, dict) for m in value)):
            return None
        return "expected a list of chat messages like {'role': 'user', 'content': '…'}"
    return None


def request_problem(block_fn: Any, inputs: object) -> str | None:
    """What is wrong with the raw ``inputs`` of one call of the event ``block_fn``, or None.

    Inputs are named after the handler's parameters (``k='abc'; expected a number from 1 to 10``);
    State inputs are kept on the server and the value a client sends for them is ignored."""
    try:
        params = list(inspect.signature(block_fn.fn).parameters)
    except (TypeError, ValueError):
        params = []
    names = [params[i] if i < len(params) else f"input {i + 1}" for i in range(len(block_fn.inputs))]
    kept = [getattr(b, "stateful", False) for b in block_fn.inputs]
    sent = [n for n, state in zip(names, kept) if not state]
    if not isinstance(inputs, list):
        return f"expected a list of the inputs ({', '.join(sent)}), got {short(inputs)}"
    if len(inputs) < len(block_fn.inputs):
        if len(inputs) == len(sent):  # a route that takes every input, State's too
            held = [n for n, state in zip(names, kept) if state]
            return f"expected the inputs ({', '.join(sent)}) and null for {', '.join(held)} (kept on the server)"
        return f"expected the inputs ({', '.join(sent)}), got {len(inputs)} value{'' if len(inputs) == 1 else 's'}"
    for name, block, value in zip(names, block_fn.inputs, inputs):
        if not getattr(block, "stateful", False) and (problem := input_problem(block, value)):
            return f"{name}={short(value)}; {problem}"
    return None


class GuardedBlocksMixin:
    """What serving safely adds to ``gr.Blocks`` (mix it in before ``gr.Blocks``): ``RequestGuard``
    in front of the routes at ``launch``, and one log line and a clear error, never a traceback, for
    a call with malformed inputs."""

    def launch(self, *args: Any, **kwargs: Any) -> Any:
        """``gr.Blocks.launch`` with ``RequestGuard`` added to the app's middleware, its upload limits
        those of the ``qa_config`` attribute (a ``Config``; the defaults without one)."""
        from starlette.middleware import Middleware

        config = getattr(self, "qa_config", None) or Config()
        app_kwargs = dict(kwargs.get("app_kwargs") or {})
        app_kwargs["middleware"] = [*app_kwargs.get("middleware", []), Middleware(RequestGuard, config=config)]
        kwargs["app_kwargs"] = app_kwargs
        kwargs.setdefault("max_file_size", config.upload.file_bytes)  # Gradio's own check of each uploaded file
        return super().launch(*args, **kwargs)  # type: ignore[misc]

    async def process_api(self, block_fn: Any, inputs: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """``gr.Blocks.process_api``, refusing malformed inputs with ``gr.Error`` before Gradio's
        preprocessing, and turning any other failure of the call into ``gr.Error`` as well.

        Gradio prints the traceback of every exception here except a ``gr.Error`` made with
        ``print_exception=False``; ours log one line instead (the traceback at DEBUG level)."""
        import gradio as gr

        fn = self.fns[block_fn] if isinstance(block_fn, int) else block_fn  # type: ignore[attr-defined]
        name = getattr(fn, "name", None) or "an event"
        problem = request_problem(fn, inputs)
        if problem is None:
            try:
                return await super().process_api(block_fn, inputs, *args, **kwargs)  # type: ignore[misc]
            except gr.Error:
                raise  # a refusal the handler worded itself
            except Exception as exc:  # noqa: BLE001 - reported below in one line
                log.debug("call of %s failed", name, exc_info=True)
                problem = f"malformed call: {one_line(exc)}"
        log.warning("rejected a call of %s: %s", name, problem)
        raise gr.Error(html.escape(problem, quote=False), print_exception=False) from None


# ---- oversize and broken requests -----------------------------------------------------


class _BodyTooLarge(Exception):
    """Raised into the app when a request body without Content-Length grows over the limit."""


Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class RequestGuard:
    """ASGI middleware in front of Gradio's routes.

    A request body over ``max_bytes`` (to ``upload_paths``: over ``upload_bytes``, by default
    ``config.upload.total_bytes`` + ``UPLOAD_FRAMING``) gets a JSON 413
    before anything parses it (by its Content-Length, or by counting when there is none), and an
    exception a route lets escape (an unknown endpoint name, arguments Gradio does not check) becomes
    one log line and a JSON 400 instead of uvicorn's traceback. Errors are ``{"error": "..."}``."""

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int = MAX_REQUEST_BYTES,
                 upload_bytes: int | None = None, upload_paths: tuple[str, ...] = UPLOAD_PATHS,
                 config: Config = Config()) -> None:
        self.app, self.max_bytes, self.upload_paths, self.limits = app, max_bytes, upload_paths, describe_limits(config)
        self.upload_bytes = config.upload.total_bytes + UPLOAD_FRAMING if upload_bytes is None else upload_bytes

    async def refuse(self, receive: Receive, send: Send, where: str, size: str, limit: int, more: bool = True) -> None:
        """Log one line, read and drop the rest of the body (``more`` to come), and answer 413."""
        log.warning("rejected %s: a body of %s", where, size)
        if more:
            await _drain(receive)
        why = (f"questions are cut to {MAX_QUESTION_CHARS} characters anyway, and a very long chat can be cleared "
               f"with New chat") if limit == self.max_bytes else f"upload {self.limits}"
        await _send_json(send, 413, f"request body over {limit / 1024 / 1024:g} MiB refused; {why}")

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = f"{scope.get('method', '?')} {_printable(str(scope.get('path', '')))}"
        limit = self.upload_bytes if scope.get("path") in self.upload_paths else self.max_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self.refuse(receive, send, where, f"{declared} bytes", limit)
            return
        received, more, started = 0, True, False

        async def counting_receive() -> dict:
            nonlocal received, more
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                more = bool(message.get("more_body", False))
                if received > limit:
                    raise _BodyTooLarge
            return message

        async def watching_send(message: dict) -> None:
            nonlocal started
            if received > limit:  # the app's answer to a body it could not finish reading
                if not started:
                    started = True
                    await self.refuse(receive, send, where, f"over {limit} bytes", limit, more)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except Exception as exc:  # noqa: BLE001 - one line, no traceback
            if received > limit:
                if not started:
                    started = True
                    await self.refuse(receive, send, where, f"over {limit} bytes", limit, more)
                return
            log.warning("rejected %s: %s", where, one_line(exc))
            log.debug("%s failed", where, exc_info=True)
            if not started:
                await _send_json(send, 400, f"malformed request: {one_line(exc)}")


def _content_length(scope: dict) -> int | None:
    """The request's Content-Length header as a number, or None."""
    for key, value in scope.get("headers", ()):
        if key.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _drain(receive: Receive, limit: int = DRAIN_BYTES) -> None:
    """Read and drop the rest of a refused body (up to ``limit`` bytes), so that a client still
    sending it reads the error instead of a reset connection."""
    seen = 0
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _send_json(send: Send, status: int, error: str) -> None:
    """Send ``{"error": error}`` as the whole response."""
    body = json.dumps({"error": error}, ensure_ascii=False).encode("utf-8")
    headers = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(demo: Any, args: argparse.Namespace, warm: Callable[[], None] | None = None, routes: list | None = None) -> int:
    """Serve the Blocks ``demo`` on the checked ``args.host``:``args.port`` until interrupted, and
    run ``warm`` (loading what the first question needs) in a background thread once the server is
    up (started before, it slows the start); ``routes`` (``qa.api.routes``) go in front of Gradio's.

    Returns the exit status: 0, 2 after a one-line error when the address was taken since it was
    checked (while the index loaded, say), 130 on Ctrl-C."""
    try:
        demo.launch(server_name=args.host, server_port=args.port, show_error=False, prevent_thread_lock=True,
                    app_kwargs={"routes": routes or []})
        if warm is not None:
            threading.Thread(target=warm, name="qa-warm", daemon=True).start()
        demo.block_thread()
    except OSError as exc:
        problem = listen_problem(args) or f"cannot serve on {args.host} port {args.port} ({one_line(exc)}); try another --port"
        print(f"error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
