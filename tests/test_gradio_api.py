"""The Gradio API of the running app: the named ``ask`` endpoint, called with ``gradio_client``,
returns the same JSON as ``python -m qa ask --json``; Gradio's upload route takes more than the 4 MiB
every other route is held to. The app runs on 127.0.0.1 and stops by itself after ``SERVER_S``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from conftest import ROOT, run_qa, stop_app, wait_for_app

from qa.serve import MAX_REQUEST_BYTES
from scripts.screenshot import free_port

SERVER_S = 180  # the server is killed after this long whatever happens
FIRST = "苏州市什么时候获批创建区块链发展先导区？"
FOLLOW_UP = "相城区呢？"  # read with FIRST: understood_as


pytestmark = pytest.mark.slow  # starts app.py


@pytest.fixture(scope="module")
def server(tiny_built, tmp_path_factory):
    """The base URL of ``app.py`` serving the tiny index (hash encoder) on 127.0.0.1."""
    corpus, index, _ = tiny_built
    port = free_port()
    log_path = tmp_path_factory.mktemp("log") / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADIO_")} | {"GRADIO_ANALYTICS_ENABLED": "False"}
    bound = ["timeout", str(SERVER_S)] if shutil.which("timeout") else []
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([*bound, sys.executable, str(ROOT / "app.py"), "--corpus", str(corpus), "--index",
                                 str(index), "--encoder", "hash", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_app(proc, base, log_path)
        yield base, index
    finally:
        stop_app(proc)
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


def test_the_ask_endpoint_is_named_readable_and_answers_as_the_cli(server):
    from gradio_client import Client

    base, index = server
    client = Client(base + "/", verbose=False)
    endpoint = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/ask"]
    params = {p["parameter_name"]: p for p in endpoint["parameters"]}
    assert list(params) == ["question", "history", "k", "mode"]
    assert params["k"]["parameter_default"] == 5 and params["mode"]["type"]["enum"] == ["hybrid", "dense", "bm25"]
    assert "ask --json" in endpoint["description"]
    got = client.predict(question=FOLLOW_UP, history=[FIRST], k=3, mode="hybrid", api_name="/ask")
    done = run_qa("ask", FOLLOW_UP, "--history", FIRST, "--k", "3", "--index", index, "--json")
    assert done.returncode == 0, done.stderr
    assert got == json.loads(done.stdout)
    assert got["understood_as"].startswith("相城区") and got["passages"]
    with pytest.raises(Exception, match='"k" must be a whole number from 1 to 50'):
        client.predict(question=FIRST, k=99, api_name="/ask")


def _post(url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_an_upload_may_pass_4_mib_and_nothing_else_may(server):
    base, _ = server
    data = b"x" * (MAX_REQUEST_BYTES + 1024)
    boundary = "qa-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"big.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    status, reply = _post(f"{base}/gradio_api/upload", body, f"multipart/form-data; boundary={boundary}")
    assert status == 200 and json.loads(reply)[0].endswith("big.txt"), reply[:300]
    status, reply = _post(f"{base}/gradio_api/call/chat", body, "application/json")
    assert status == 413 and json.loads(reply)["error"].startswith("request body over 4 MiB refused")


def test_feedback_posted_to_the_app_lands_beside_its_index(server):
    from qa import feedback, store

    base, index = server
    path = store.feedback_path(index)
    path.unlink(missing_ok=True)
    try:
        status, reply = _post(f"{base}/api/ask", json.dumps({"question": FOLLOW_UP, "history": [FIRST]}).encode(),
                              "application/json")
        assert status == 200, reply
        rated = json.loads(reply) | {"history": [FIRST], "verdict": "down", "reason": "wrong_sentence"}
        status, reply = _post(f"{base}/api/feedback", json.dumps(rated).encode(), "application/json")
        assert status == 200, reply
        assert feedback.read(path).records == [json.loads(reply)]
        assert json.loads(reply)["understood_as"] == rated["understood_as"] and json.loads(reply)["history"] == [FIRST]
        status, reply = _post(f"{base}/api/feedback", json.dumps(rated | {"reason": "rude"}).encode(), "application/json")
        assert status == 400 and '"reason"' in json.loads(reply)["error"]["message"]
        status, reply = _post(f"{base}/api/feedback", b"x" * (MAX_REQUEST_BYTES + 1), "application/json")
        assert status == 413 and len(feedback.read(path).records) == 1
    finally:
        path.unlink(missing_ok=True)  # the module's index is shared: leave it as it was
