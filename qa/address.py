"""The app's command line, host and port: checked by binding them before gradio is imported.

gradio reads GRADIO_SERVER_PORT at import and fails on a bad value with a traceback, so the host and
port (flags, or GRADIO_SERVER_NAME / GRADIO_SERVER_PORT) are resolved and bound here first; a bad
one is a one-line ``error: ...`` and exit status 2 (``OneLineParser`` words argparse's errors so too).
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
from typing import NoReturn

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
HOST_EXAMPLES = f"an address of this machine, e.g. {DEFAULT_HOST} (this machine only) or 0.0.0.0 (every interface)"


def usage_error(message: str) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors as one line (``error: ...; see python PROG --help``, exit status 2),
    like every other error of the app."""

    def error(self, message: str) -> NoReturn:
        usage_error(f"{message}; see python {self.prog} --help")


def _setting(flag: str, env: str, value: str | None) -> tuple[str | None, str]:
    """The flag's value or else the environment variable's (None when neither is set), and the
    name of the one it came from, for error messages."""
    if value is not None:
        return value, flag
    from_env = os.environ.get(env, "").strip()
    return (from_env or None), env


def _fix(source: str, what: str) -> str:
    """How to give the setting that came from ``source`` (a flag or an environment variable) another
    value: ``pass --port with WHAT`` or ``set GRADIO_SERVER_PORT to WHAT, or unset it``."""
    return f"set {source} to {what}, or unset it" if source.startswith("GRADIO_") else f"pass {source} with {what}"


def resolve_address(args: argparse.Namespace) -> None:
    """Set ``args.host`` and ``args.port`` from the ``--host`` / ``--port`` flags (None when not
    given), else GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, else ``DEFAULT_HOST`` / ``DEFAULT_PORT``,
    and ``args.host_source`` / ``args.port_source`` to the flag or variable each came from, for
    error messages. An empty host or a bad port is ``usage_error`` (the host is checked further by
    ``listen_problem``)."""
    host, args.host_source = _setting("--host", "GRADIO_SERVER_NAME", args.host)
    args.host = DEFAULT_HOST if host is None else host
    if not args.host.strip():
        usage_error(f"{args.host_source}={args.host!r} is empty; {_fix(args.host_source, HOST_EXAMPLES)}")
    port, args.port_source = _setting("--port", "GRADIO_SERVER_PORT", args.port)
    try:
        args.port = DEFAULT_PORT if port is None else port_number(port, args.port_source)
    except ValueError as exc:
        usage_error(str(exc))


def port_number(raw: str, source: str) -> int:
    """``raw`` as a TCP port, 1 to 65535; ``ValueError`` naming ``source`` and the fix otherwise."""
    try:
        port = int(raw.strip())
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ValueError(f"{source}={raw!r} is not a port; {_fix(source, f'a whole number from 1 to 65535, e.g. {DEFAULT_PORT}')}")
    return port


def listen_problem(args: argparse.Namespace) -> str | None:
    """Why the server cannot listen on ``args.host``:``args.port``, found by binding it now, before
    the index loads and before gradio is imported; None when it can."""
    host, port = args.host, args.port
    where, other_host = f"{args.host_source}={host!r}", _fix(args.host_source, HOST_EXAMPLES)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        return f"{where} is not a known address ({reason}); {other_host}"
    try:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            sock.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return f"port {port} on {host} is already in use; stop the program using it, or {_fix(args.port_source, 'another port')}"
        if exc.errno == errno.EADDRNOTAVAIL:
            return f"{where} is not an address of this machine; {other_host}"
        if exc.errno == errno.EACCES:
            return f"no permission to listen on port {port}; {_fix(args.port_source, f'a port from 1024 to 65535, e.g. {DEFAULT_PORT}')}"
        return f"cannot listen on {host} port {port} ({exc.strerror or exc}); pass another --host or --port"
    return None


def gradio_env(args: argparse.Namespace) -> None:
    """Make the environment agree with the checked host and port before gradio is imported.

    gradio reads GRADIO_SERVER_PORT at import (a bad value fails there with a traceback) and binds
    GRADIO_SERVER_NAME as an IPv4 address in its own port check; ``launch`` is given both anyway."""
    if "gradio" in sys.modules:
        return
    os.environ["GRADIO_SERVER_PORT"] = str(args.port)
    os.environ.pop("GRADIO_SERVER_NAME", None)
