"""Reading a file in a child process with a time limit, so that a file that hangs or crashes a reader
(PDFium on a malformed PDF, say) is skipped with a reason and the build goes on.

``ReaderProcess`` keeps one child for a whole corpus scan (started when the first file needs it): each
file's name, bytes and ``ReadConfig`` go to it through a socket pair; its progress reports (a page of
OCR) and then its ``Extracted`` (or the one-line reason it cannot be read) come back. A file the child
works on longer than ``read.timeout_s`` without a report is skipped: the child is killed and the next
file starts a new one. ``read_document`` is what the child runs: the reader of the file's type.

The child is a fresh interpreter that imports only this package (``python -c``), not multiprocessing's
spawn, which runs the caller's main script again in the child: a script that builds an index without
an ``if __name__ == "__main__"`` guard would then build in the child too.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ..config import ReadConfig
from ..errors import CorpusError
from .extract import Extracted, Progress
from .pdf import read_pdf
from .web import read_html
from .word import read_docx

def read_document(rel: str, data: bytes, read: ReadConfig = ReadConfig(), progress: Progress | None = None) -> Extracted:
    """The text of a PDF, Word or web-page file by its suffix; ``CorpusError`` saying why it cannot be read."""
    suffix = Path(rel).suffix.lower()
    try:
        if suffix == ".pdf":
            return read_pdf(data, read, progress)
        if suffix == ".docx":
            return read_docx(data, read)
        return read_html(data)
    except CorpusError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file is skipped with a reason, never a traceback
        raise CorpusError(f"cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None


START_S = 60  # the most a child may take to start (import the readers), on a busy machine
CHILD = "import json, sys; sys.path[:] = json.loads(sys.argv[2]); from qa.readers.worker import serve; serve(int(sys.argv[1]))"


def serve(fd: int) -> None:
    """The child: read each (reader, name, bytes, config) sent on the socket ``fd``, until it is sent None or closed."""
    conn = Connection(fd)
    try:
        conn.send(("ready",))
        while (job := conn.recv()) is not None:
            reader, rel, data, read = job
            try:
                conn.send(("done", reader(rel, data, read, lambda *report: conn.send(("progress", *report)))))
            except CorpusError as exc:
                conn.send(("error", str(exc)))
    except (EOFError, OSError, KeyboardInterrupt):
        return


class ReaderProcess:
    """Reads files in a child process, each within ``timeout_s`` seconds of its last progress report
    (``timeout_s`` 0: in this process, without a limit). Use it as a context manager."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.proc: Any = None
        self.conn: Any = None

    def __enter__(self) -> ReaderProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, rel: str, data: bytes, read: ReadConfig, progress: Progress | None = None) -> Extracted:
        """The file's ``Extracted``; ``CorpusError`` when it cannot be read, takes too long or crashes the reader."""
        reader = read_document  # looked up at each call: a test puts a slow reader in its place
        if not self.timeout_s:
            return reader(rel, data, read, progress)
        try:
            if self.proc is None:
                self._start()
            self.conn.send((reader, rel, data, read))
            while True:
                if not self.conn.poll(self.timeout_s):
                    self._stop()
                    raise CorpusError(f"reading took longer than {self.timeout_s:g} s (read.timeout_s); "
                                      f"split the file, or raise the limit if it is just large")
                kind, *rest = self.conn.recv()
                if kind == "progress":
                    if progress:
                        progress(*rest)
                    continue
                if kind == "error":
                    raise CorpusError(rest[0])
                return rest[0]
        except (EOFError, OSError):
            code = self._stop()
            raise CorpusError(f"the reader crashed on it (exit code {code}); re-save or re-export the file") from None

    def _start(self) -> None:
        """Start the child and wait until it is ready (its start is not the first file's time)."""
        mine, child = socket.socketpair()
        with child:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(child.fileno()), json.dumps(sys.path)], pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.conn = Connection(mine.detach())
        if not self.conn.poll(START_S):
            self._stop()
            raise CorpusError(f"the reader did not start within {START_S} s; try again")
        self.conn.recv()

    def _stop(self) -> int | None:
        """Kill the child (the next file starts a new one); its exit code."""
        proc, self.proc = self.proc, None
        if self.conn is not None:
            self.conn.close()
        if proc is None:
            return None
        proc.kill()
        return proc.wait()

    def close(self) -> None:
        """Let the child finish and end, or end it."""
        if self.proc is None:
            return
        try:
            self.conn.send(None)
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            self._stop()
        else:
            self.conn.close()
            self.proc = None
