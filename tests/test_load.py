"""Load: the real app under 20 concurrent clients, and memory over 1,000 questions.

The app (``app.build_app``) is served in-process on a free 127.0.0.1 port over the
tiny corpus with the ``hash`` encoder; ``gradio_client`` calls its ``/ask`` endpoint
(the Ask button's handler) from 20 threads, one client (session) per thread.
Latency percentiles and RSS numbers are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import html
import os
import re
import socket
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import pytest
from conftest import OFF_TOPIC, write_corpus

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

pytestmark = pytest.mark.slow

THREADS = 20
REQUESTS = 200
REQUEST_TIMEOUT_S = 30
TOTAL_TIMEOUT_S = 120
RSS_GROWTH_LIMIT_MB = 50

# question -> text of the passage that answers it (in the tiny corpus of conftest)
ANSWERABLE = {
    "苏州什么时候获批创建区块链发展先导区？": "2021年11月，工信部正式复函，支持苏州市创建区块链发展先导区。",
    "臺北捷運哪一年通車？": "臺北捷運於1996年3月28日正式通車，第一條路線是文湖線。",
    "龙井茶产于哪里？": "龙井茶产于浙江杭州西湖一带，是中国十大名茶之一。",
    "相城区集聚了多少家区块链企业？": "目前相城区已集聚区块链技术和应用企业160家，共计37个应用场景备案成功。",
}
QUESTIONS = [*ANSWERABLE, OFF_TOPIC]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        resident_pages = int(fh.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _content_text(message: dict) -> str:
    """The raw HTML of a chat message (Gradio 6 sends content as a list of text parts)."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _visible(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(pipeline, url) of the real app on the tiny corpus; closed after the module."""
    import app
    from qa import Pipeline

    base = tmp_path_factory.mktemp("load")
    pipeline = Pipeline.open(write_corpus(base / "corpus"), base / "index", encoder="hash")
    pipeline.warm()
    demo = app.build_app(pipeline)
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, show_error=False)
    try:
        yield pipeline, f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def test_20_threads_ask_200_questions_through_the_app(served):
    from gradio_client import Client

    _, url = served
    kw = {"verbose": False, "analytics_enabled": False, "download_files": False}
    probe = Client(url, **kw)
    api = probe.view_api(return_format="dict", print_info=False)
    probe.close()
    assert "/chat" in api["named_endpoints"], api["named_endpoints"].keys()
    params = [p["parameter_name"] for p in api["named_endpoints"]["/chat"]["parameters"]]
    assert params == ["message", "history", "mode", "k"], params

    local = threading.local()
    clients: list = []
    clients_lock = threading.Lock()

    def one(i: int):
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = Client(url, **kw)
            with clients_lock:
                clients.append(client)
        question = QUESTIONS[i % len(QUESTIONS)]
        t0 = time.perf_counter()
        job = client.submit(question, [], "hybrid", 5, api_name="/chat")
        result = job.result(timeout=REQUEST_TIMEOUT_S)
        return question, result, time.perf_counter() - t0

    t_start = time.perf_counter()
    pool = ThreadPoolExecutor(THREADS, thread_name_prefix="load")
    futures = [pool.submit(one, i) for i in range(REQUESTS)]
    _, pending = wait(futures, timeout=TOTAL_TIMEOUT_S)
    pool.shutdown(wait=not pending, cancel_futures=True)
    wall = time.perf_counter() - t_start
    with ThreadPoolExecutor(THREADS) as closer:  # each close() waits ~1 s for its heartbeat thread
        list(closer.map(lambda c: c.close(), clients))
    assert not pending, f"{len(pending)} of {REQUESTS} requests unfinished after {TOTAL_TIMEOUT_S} s"

    errors = [repr(f.exception()) for f in futures if f.exception() is not None]
    assert not errors, f"{len(errors)} requests failed, e.g. {errors[:3]}"
    latencies = []
    for f in futures:
        question, result, seconds = f.result()
        latencies.append(seconds)
        history = result[0]
        assert [m["role"] for m in history] == ["user", "assistant"], history
        reply = _content_text(history[-1])
        assert "qa-error" not in reply, reply[:500]
        if question in ANSWERABLE:
            assert 'class="qa-reply qa-answer"' in reply, (question, reply[:500])
            assert ANSWERABLE[question] in _visible(reply), (question, _visible(reply)[:500])
        else:
            assert 'class="qa-reply qa-abstain"' in reply, (question, reply[:500])

    p50, p95 = _pct(latencies, 50), _pct(latencies, 95)
    print(f"\n  app load: {REQUESTS} requests from {THREADS} threads in {wall:.1f} s "
          f"({REQUESTS / wall:.1f} req/s); latency p50 {p50 * 1e3:.0f} ms, p95 {p95 * 1e3:.0f} ms, "
          f"max {max(latencies) * 1e3:.0f} ms")
    assert p95 < REQUEST_TIMEOUT_S


def test_memory_stays_flat_over_1000_sequential_questions(served):
    pipeline, _ = served
    stems = [*ANSWERABLE, OFF_TOPIC, "When did MIIT approve Suzhou's pilot zone?", "Python 是谁创建的？"]
    questions = [f"{stems[i % len(stems)]} 第{i}问" for i in range(1000)]
    assert len(set(questions)) == 1000  # distinct: the query-vector cache never answers
    rss = {}
    t0 = time.perf_counter()
    for n, q in enumerate(questions, 1):
        a = pipeline.ask(q, k=5)
        assert a.hits
        if n in (1, 200, 1000):
            rss[n] = _rss_mb()
    seconds = time.perf_counter() - t0
    growth = rss[1000] - rss[200]
    print(f"\n  memory: RSS {rss[1]:.1f} MB after question 1, {rss[200]:.1f} MB after 200, "
          f"{rss[1000]:.1f} MB after 1000 (growth 200->1000: {growth:+.1f} MB); "
          f"1000 questions in {seconds:.1f} s ({seconds * 1e3 / len(questions):.2f} ms/question)")
    assert growth < RSS_GROWTH_LIMIT_MB
