"""Readers that stand in for ``qa.readers.worker.read_document`` in tests, importable by its child
process: a file named slow* hangs, crash* kills the child, busy* reports progress while it works."""

from __future__ import annotations

import os
import time

from qa.readers.worker import read_document


def read_slowly(rel, data, read, progress=None):
    """``read_document``, after hanging, crashing or working a while as the file's name says."""
    if rel.startswith("slow"):
        time.sleep(600)
    if rel.startswith("crash"):
        os._exit(3)
    if rel.startswith("busy"):
        for page in range(1, 5):
            time.sleep(0.6)
            progress("ocr", page, 4)
    return read_document(rel, data, read, progress)
