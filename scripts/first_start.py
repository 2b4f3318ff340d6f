"""Seconds from ``python app.py`` to a page that answers: on a fresh clone, then on the next start.

Clones this repository's committed HEAD into a temporary folder and points ``XDG_CACHE_HOME`` at an
empty folder, so the first start does everything a new machine does -- prepares the default encoder
from the bundled weights, builds ``index/`` from ``corpus/``, starts the server -- and the second start
finds both. Each start is timed until the URL serves the page, with this interpreter (its packages
are the installed requirements).

Run: ``PYTHONPATH=. python scripts/first_start.py [--port 7871]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start(clone: Path, env: dict, port: int, timeout: float = 300) -> float:
    """Seconds until ``python app.py --port PORT`` in ``clone`` serves its page; the server is stopped after."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=clone, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while time.perf_counter() - t0 < timeout:
            if proc.poll() is not None:
                raise SystemExit(f"app.py exited with {proc.returncode}: {proc.stdout.read()[-500:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"app.py did not serve its page within {timeout:.0f} s")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=7871)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="first-start-"))
    try:
        clone = work / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache"), "PYTHONPATH": str(clone)}
        first = start(clone, env, args.port)
        prepared = [p.name for p in (work / "cache" / "qa" / "encoders").glob("*")] if (work / "cache").exists() else []
        second = start(clone, env, args.port)
        print(f"first start on a fresh clone (empty model cache, no index): {first:.1f} s to the page; "
              f"prepared: {', '.join(prepared) or 'nothing'}")
        print(f"second start: {second:.1f} s to the page")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
