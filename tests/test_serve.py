"""Fast tests of qa/serve.py: the request guard, quoting bad values, the host and port, serving.

No server is started here: the guard runs on hand-made ASGI messages and ``serve`` on a stand-in
for the Blocks. The app end to end (a real server, malformed calls) is in tests/test_app.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from qa import serve

ROOT = Path(__file__).resolve().parents[1]


def test_importing_serve_does_not_import_gradio():
    """gradio (about 2 s to import, and it reads GRADIO_SERVER_PORT) is imported only to serve."""
    code = "import sys, qa.serve; print(sorted(m for m in sys.modules if m.split('.')[0] in ('gradio', 'starlette')))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr[-2000:]


# ---- quoting bad values ----------------------------------------------------------------


def test_short_quotes_on_one_line_and_cuts():
    assert serve.short("a\nb") == "'a\\nb'"
    quoted = serve.short("x" * 10_000)
    assert len(quoted) == serve.SHORT_REPR and quoted.endswith("…")


def test_one_line_keeps_the_type_and_first_line():
    assert serve.one_line(KeyError("/nope")) == "KeyError: '/nope'"
    assert serve.one_line(ValueError("\n  first\nsecond")) == "ValueError: first"
    assert serve.one_line(RuntimeError()) == "RuntimeError"


@pytest.mark.parametrize("value, expected", [(3, True), (2.5, True), (True, False), (float("nan"), False),
                                             (float("inf"), False), ("3", False), (None, False)])
def test_is_number(value, expected):
    assert serve.is_number(value) is expected


# ---- oversize and broken requests ------------------------------------------------------


def _through_guard(app_fn, chunks: list[bytes], headers=(), max_bytes: int = 100) -> tuple[int, dict, bool]:
    """One POST of ``chunks`` through ``RequestGuard(app_fn)``: (status, JSON body, whether the
    request body was read to its end)."""
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/gradio_api/x\nforged", "headers": list(headers)}
    asyncio.run(asyncio.wait_for(serve.RequestGuard(app_fn, max_bytes)(scope, receive, send), 5))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body), not messages


async def _reads_the_body(scope, receive, send):
    """An app that reads the whole body and answers {"size": bytes read}."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = json.dumps({"size": size}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def _answers_400_on_read_errors(scope, receive, send):
    """An app that, as FastAPI does, answers 400 when reading the body fails."""
    try:
        await _reads_the_body(scope, receive, send)
    except Exception:
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b'{"detail": "There was an error parsing the body"}'})


def test_request_guard_refuses_bodies_over_the_limit(caplog):
    """a 30M-character question was parsed and answered (21 s, server RSS 504 -> 882 MB)."""
    assert _through_guard(_reads_the_body, [b"x" * 60, b"y" * 40]) == (200, {"size": 100}, True)
    declared = [(b"content-length", b"101")]
    cases = [
        (_reads_the_body, [b"x" * 101], declared),  # refused by its Content-Length, unread by the app
        (_reads_the_body, [b"x" * 60, b"y" * 60, b"z"], ()),  # no Content-Length: counted
        (_reads_the_body, [b"x" * 60, b"y" * 60], ()),  # the last chunk goes over: nothing left to drain
        (_answers_400_on_read_errors, [b"x" * 60, b"y" * 60, b"z"], ()),  # its 400 becomes our 413
    ]
    for app_fn, chunks, headers in cases:
        caplog.clear()
        status, body, drained = _through_guard(app_fn, chunks, headers)
        assert (status, drained) == (413, True) and "request body over" in body["error"], body
        assert [(r.levelname, r.exc_info) for r in caplog.records] == [("WARNING", None)]
        assert "\n" not in caplog.records[0].getMessage()


def test_request_guard_turns_a_route_exception_into_one_line_and_a_400(caplog):
    """an unknown endpoint name raised inside Gradio's route and uvicorn logged a traceback."""

    async def broken(scope, receive, send):
        await receive()
        raise KeyError("/nope")

    status, body, _ = _through_guard(broken, [b"{}"])
    assert (status, body) == (400, {"error": "malformed request: KeyError: '/nope'"})
    assert [(r.levelname, r.exc_info) for r in caplog.records] == [("WARNING", None)]
    assert caplog.records[0].getMessage() == "rejected POST /gradio_api/x?forged: KeyError: '/nope'"


# ---- host and port ---------------------------------------------------------------------


def _address(host=None, port=None) -> argparse.Namespace:
    args = argparse.Namespace(host=host, port=port)
    serve.resolve_address(args)
    return args


def test_resolve_address_prefers_flags_then_env_then_defaults(monkeypatch):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    args = _address()
    assert (args.host, args.port, args.host_source, args.port_source) == (
        serve.DEFAULT_HOST, serve.DEFAULT_PORT, "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT")
    monkeypatch.setenv("GRADIO_SERVER_NAME", " 0.0.0.0 ")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8123")
    assert (_address().host, _address().port) == ("0.0.0.0", 8123)  # the variable's value, stripped
    args = _address("localhost", "9000")
    assert (args.host, args.port, args.host_source, args.port_source) == ("localhost", 9000, "--host", "--port")


@pytest.mark.parametrize("host, port, env, expected", [
    ("", None, {}, "error: --host='' is empty; pass --host with an address of this machine"),
    (None, "0", {}, "error: --port='0' is not a port; pass --port with a whole number from 1 to 65535, e.g. 7860"),
    (None, None, {"GRADIO_SERVER_PORT": "abc"},
     "error: GRADIO_SERVER_PORT='abc' is not a port; set GRADIO_SERVER_PORT to a whole number from 1 to 65535"),
], ids=["host-empty", "port-zero", "env-port-text"])
def test_resolve_address_errors_are_one_line_and_exit_2(monkeypatch, capsys, host, port, env, expected):
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exited:
        _address(host, port)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.count("\n") == 1 and err.startswith(expected), err


def test_one_line_parser_names_its_program(capsys):
    with pytest.raises(SystemExit) as exited:
        serve.OneLineParser(prog="demo.py").parse_args(["--bogus"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == "error: unrecognized arguments: --bogus; see python demo.py --help\n"


def test_listen_problem_finds_a_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = argparse.Namespace(host="127.0.0.1", port=port, host_source="--host", port_source="GRADIO_SERVER_PORT")
        problem = serve.listen_problem(args)
    assert problem.startswith(f"port {port} on 127.0.0.1 is already in use") and "set GRADIO_SERVER_PORT" in problem
    assert serve.listen_problem(args) is None  # free again once closed


# ---- serving ---------------------------------------------------------------------------


class _Demo:
    """Stands in for the Blocks: ``launch`` and ``block_thread`` raise what they are given to."""

    def __init__(self, launch_fails=None, block_fails=None):
        self.launch_fails, self.block_fails, self.launched = launch_fails, block_fails, None

    def launch(self, **kwargs):
        self.launched = kwargs
        if self.launch_fails:
            raise self.launch_fails

    def block_thread(self):
        if self.block_fails:
            raise self.block_fails


def test_serve_warms_after_the_launch_and_returns_exit_statuses(capsys):
    args = argparse.Namespace(host="127.0.0.1", port=1, host_source="--host", port_source="--port")
    warmed, done = [], threading.Event()
    demo = _Demo()
    assert serve.serve(demo, args, warm=lambda: (warmed.append(demo.launched is not None), done.set())) == 0
    assert demo.launched == {"server_name": "127.0.0.1", "server_port": 1, "show_error": False,
                             "prevent_thread_lock": True, "app_kwargs": {"routes": []}}  # no extra routes given
    assert serve.serve(_Demo(block_fails=KeyboardInterrupt()), args) == 130
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        args.port = free.getsockname()[1]
    assert serve.serve(_Demo(launch_fails=OSError("taken")), args) == 2
    err = capsys.readouterr().err
    assert err == f"error: cannot serve on 127.0.0.1 port {args.port} (OSError: taken); try another --port\n"
    assert done.wait(5) and warmed == [True]  # run in its thread, after the launch
