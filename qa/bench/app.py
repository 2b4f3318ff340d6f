"""Bench › app: cold start of ``app.py --index DIR`` to HTTP 200 and to the first answer."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import BenchError
from .measure import ROOT


def free_port() -> int:
    """An unused local TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_cold_start(index_dir: Path, question: str, timeout: float = 300) -> dict:
    """Launch ``app.py --index DIR``; seconds to HTTP 200 on ``/`` and to the first answer."""
    import urllib.error
    import urllib.request

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    url = f"http://127.0.0.1:{port}/"
    out: dict = {}
    t0 = time.perf_counter()
    errf = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--index", str(index_dir), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errf, text=True)
    try:
        ready = None
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                errf.seek(0)
                raise BenchError(f"app.py exited with code {proc.returncode}: {' '.join(errf.read().split())[-300:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        ready = time.perf_counter() - t0
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.05)
        if ready is None:
            raise BenchError(f"app.py did not answer on {url} within {timeout:.0f} s")
        from gradio_client import Client

        client = Client(url, verbose=False)
        t1 = time.perf_counter()
        result = client.predict(question=question, history=[], k=5, mode="hybrid", api_name="/ask")
        first = time.perf_counter() - t0
        ok = isinstance(result, dict) and bool(result.get("passages"))  # the ask --json object
        out.update(ready_s=ready, first_answer_s=first, first_ask_s=time.perf_counter() - t1, answered=ok)
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        errf.seek(0)
        m = re.search(r"ready: .* in ([0-9.]+) s", errf.read())
        errf.close()
        if m:  # the app's own timing of Pipeline.open; the rest of ready_s is imports, UI and launch
            out["index_load_s"] = float(m.group(1))


# ---- orchestration ------------------------------------------------------------------------
