"""Take docs/screenshot.png and docs/documents.png: start the app on the real corpus, ask a question, shoot the page, then the opened Documents section.

    python scripts/screenshot.py [--corpus corpus] [--index DIR] [--question Q] [--out docs/screenshot.png]

Needs Chromium (apt-get install chromium) and a CJK font (apt-get install fonts-noto-cjk).
Without --index the index is built in a temporary folder (a few seconds), so index/ is never touched.
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import build_app  # noqa: E402
from qa import Pipeline  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(ROOT / "corpus"))
    ap.add_argument("--index", default=None, help="index folder (default: a temporary one)")
    ap.add_argument("--encoder", default=None)
    ap.add_argument("--question", default="苏州区块链发展水平在2021年排名第几？")
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    ap.add_argument("--documents-out", default=str(ROOT / "docs" / "documents.png"),
                    help="picture of the opened Documents section (add, list, remove)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    args = ap.parse_args(argv)

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pipeline = Pipeline.open(args.corpus, args.index or Path(tmp) / "index", encoder=args.encoder)
        print(f"index ready in {time.perf_counter() - t0:.1f} s")
        demo = build_app(pipeline)
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": args.width, "height": args.height}, locale="zh-CN")
                page.goto(f"http://127.0.0.1:{port}/")
                page.locator("#qa-input textarea").fill(args.question)
                page.locator("#qa-ask").click()
                page.locator("#qa-chat .qa-reply").first.wait_for(timeout=30_000)
                page.locator("#qa-doc .qa-doc-body").wait_for(timeout=10_000)
                page.wait_for_timeout(800)  # let the panel scroll to the highlight
                out = Path(args.out)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out))
                page.locator("#qa-docs").get_by_text("文件 / Documents").first.click()
                page.locator("#qa-docs").get_by_text("suzhou-blockchain-pilot-zone").first.wait_for(timeout=20_000)
                page.locator("#qa-docs").scroll_into_view_if_needed()
                page.wait_for_timeout(500)
                page.locator("#qa-docs").screenshot(path=str(args.documents_out))
                browser.close()
        finally:
            demo.close()
    print(f"saved {out} and {args.documents_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
