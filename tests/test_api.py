"""API bodies (hash encoder, tiny corpus): /api/ask gives the CLI's --json object, chat completions the
quote and its citations, streaming the same as server-sent events; bad bodies are ApiErrors."""

from __future__ import annotations

import json

import pytest
from conftest import run_qa

from qa.api import ApiError, ask, chat_chunks, chat_completion, error_body

HISTORY = ["臺北捷運於1996年哪一天正式通車？"]


def test_api_ask_is_the_cli_json_for_the_same_question(tiny_built):
    _, index, p = tiny_built
    res = run_qa("ask", "2035年呢？", "--history", HISTORY[0], "--json", "--index", index, "--k", "3")
    assert res.returncode == 0, res.stderr
    assert ask(p, {"question": "2035年呢？", "history": HISTORY, "k": 3}) == json.loads(res.stdout)
    assert ask(p, {"question": "臺北捷運哪一年通車？"}) == p.ask("臺北捷運哪一年通車？").to_json()


@pytest.mark.parametrize("body, words", [
    ([], "JSON object"), ({}, '"question"'), ({"question": " "}, '"question"'),
    ({"question": "q", "history": "x"}, '"history"'), ({"question": "q", "k": 0}, '"k"'),
    ({"question": "q", "k": 51}, '"k"'), ({"question": "q", "mode": "semantic"}, '"mode"'),
])
def test_api_ask_refuses_bad_bodies_with_a_message(tiny_built, body, words):
    _, _, p = tiny_built
    with pytest.raises(ApiError, match=words) as err:
        ask(p, body)
    assert err.value.status == 400 and error_body(str(err.value))["error"]["message"] == str(err.value)


def test_chat_completion_quotes_and_cites(tiny_built):
    _, _, p = tiny_built
    body = {"model": "qa", "messages": [{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": "臺北捷運哪一年通車？"}]}
    out = chat_completion(p, body)
    a = p.ask("臺北捷運哪一年通車？")
    assert out["object"] == "chat.completion" and out["qa"] == a.to_json()
    content = out["choices"][0]["message"]["content"]
    assert out["choices"][0]["message"]["role"] == "assistant"
    if a.quote is not None:
        assert a.quote.text in content and out["citations"][0]["quote"] == a.quote.text
    assert [c["passage_id"] for c in out["citations"]] == [h.passage.id for h in a.hits]


def test_chat_completion_reads_earlier_user_messages_as_history(tiny_built):
    _, _, p = tiny_built
    body = {"messages": [{"role": "user", "content": HISTORY[0]}, {"role": "assistant", "content": "…"},
                         {"role": "user", "content": "2035年呢？"}]}
    out = chat_completion(p, body)
    assert out["qa"] == p.ask("2035年呢？", history=HISTORY).to_json()
    assert out["choices"][0]["message"]["content"].startswith("理解为 / Understood as: 臺北捷運於2035年")


def test_chat_chunks_stream_the_same_reply(tiny_built):
    _, _, p = tiny_built
    lines = list(chat_chunks(p, {"messages": [{"role": "user", "content": "臺北捷運哪一年通車？"}]}))
    assert lines[-1] == "data: [DONE]\n\n"
    chunks = [json.loads(x[len("data: "):]) for x in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == chat_completion(p, {"messages": [{"role": "user", "content": "臺北捷運哪一年通車？"}]})[
        "choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and "citations" in chunks[-1]


@pytest.mark.parametrize("body", [{"messages": []}, {"messages": [{"role": "assistant", "content": "hi"}]},
                                  {"messages": [{"role": "user"}]}])
def test_chat_completion_refuses_bad_messages(tiny_built, body):
    _, _, p = tiny_built
    with pytest.raises(ApiError, match="messages|last message"):
        chat_completion(p, body)
