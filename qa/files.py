"""Files: read bytes from paths a user names without hanging, exhausting memory or leaving a folder.

A FIFO blocks whoever opens it, a device such as ``/dev/zero`` never ends, a ``/proc`` file says it
is empty, and a symlink may lead anywhere on the machine: the corpus reader (``qa.ingest``) and
the question-file reader (``qa.evaluate``) read through these functions instead of ``open``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


_KINDS = ((stat.S_ISDIR, "folder"), (stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISCHR, "character device"),
          (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket"))


class NotRegularFileError(OSError):
    """A FIFO, device, socket or folder (``os.stat`` mode ``mode``) where a regular file was expected."""

    def __init__(self, mode: int) -> None:
        self.kind = next((kind for test, kind in _KINDS if test(mode)), "special file")  # 'named pipe (FIFO)', ...
        super().__init__(f"not a regular file but a {self.kind}; only regular files are read: use a plain file")


def open_regular(path: str | Path) -> BinaryIO:
    """Open a regular file to read bytes; raise ``NotRegularFileError`` for anything else.

    The mode is checked before opening: opening a FIFO blocks until something writes to it.
    The descriptor is opened non-blocking and checked again, in case the path was swapped.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(mode)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(mode)
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_limited(path: str | Path, limit: int) -> bytes | None:
    """A regular file's bytes, or None when it holds more than ``limit``; raises ``OSError``.

    At most ``limit + 1`` bytes are read: a small ``st_size`` is not trusted (/proc files say 0).
    """
    with open_regular(path) as fh:
        if os.fstat(fh.fileno()).st_size > limit:
            return None
        data = fh.read(limit + 1)
    return data if len(data) <= limit else None


def iter_lines(fh: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of each line, split at \\n, \\r\\n and \\r as text mode does; a leading BOM dropped.

    Lines stay bytes so that one that is not UTF-8 (see ``decode_line``) is skipped by its
    number instead of failing the whole file.
    """
    lineno = 0
    for i, chunk in enumerate(fh):
        for line in (chunk[3:] if i == 0 and chunk.startswith(b"\xef\xbb\xbf") else chunk).splitlines():
            lineno += 1
            yield lineno, line


def decode_line(raw: bytes) -> str:
    """One line of a JSON-lines file as text; raise ``ValueError`` naming the bad byte if it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 at byte {exc.start + 1} of the line ({exc.reason}); save the file as UTF-8") from None


def outside_link(path: str | Path, real_root: str | None) -> str | None:
    """The real path of symlink ``path`` when it leaves ``real_root`` (None: no check), else None."""
    if real_root is None or not os.path.islink(path):
        return None
    real = os.path.realpath(path)
    try:
        return None if os.path.commonpath([real, real_root]) == real_root else real
    except ValueError:  # another drive
        return real


def file_digest(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
