"""Feedback (hash encoder, tiny corpus): records checked against the index, appended beside it, read back
with bad lines reported by number, exported as eval questions by the rules of ``qa.feedback``; the chat's
👍 / 👎 and reason, ``POST /api/feedback`` and the Markdown transcript."""

from __future__ import annotations

import json
import os
import time
import threading
import types

import pytest
from conftest import run_qa

from qa import feedback, render, store, transcript
from qa.api import ApiError, ask, routes
from qa.api import feedback as api_feedback
from qa.chat import ChatHandlers
from qa.errors import FeedbackError, IndexWriteError
from qa.evaluate import load_questions

METRO = "臺北捷運哪一年通車？"  # answered from taipei-metro#0
TEA = "龙井茶产于哪里？"  # answered from longjing-tea#0
OFF = "红烧肉怎么做？"  # declined
FIRST, FOLLOW = "苏州市什么时候获批创建区块链发展先导区？", "相城区呢？"  # a follow-up, read with FIRST


def _shown(p, question, history=(), k=5):
    return feedback.shown(p.ask(question, k=k, history=list(history)), store.index_version(p.manifest))


def _rec(p, question, verdict, reason=None, history=(), shown=None):
    return feedback.record(question, list(history), verdict, reason, shown or _shown(p, question, history), p.documents)


# ---- one record -------------------------------------------------------------------------


def test_a_record_holds_the_question_history_answer_passages_and_index_version(tiny_built):
    _, _, p = tiny_built
    a = p.ask(FOLLOW, history=[FIRST])
    r = feedback.record(FOLLOW, [FIRST], "down", "wrong_sentence", feedback.shown(a, "build-x"), p.documents)
    assert list(r) == ["time", "question", "history", "verdict", "reason", "answer", "understood_as", "passages",
                       "index_version"]
    assert (r["question"], r["history"], r["verdict"], r["reason"]) == (FOLLOW, [FIRST], "down", "wrong_sentence")
    assert r["answer"] == a.to_json()["answer"] and r["answer"]["quote"] == a.quote.text  # the ask --json answer
    assert r["understood_as"] == a.understood_as and r["index_version"] == "build-x"
    assert [x["passage_id"] for x in r["passages"]] == [h.passage.id for h in a.hits]
    assert all("text" not in x for x in r["passages"])  # the passages shown, not their text
    assert store.index_version(p.manifest) == p.manifest["build"] and r["time"][:2] == "20"
    declined = _rec(p, OFF, "up")
    assert declined["answer"] is None and declined["passages"]  # declined: no answer, the passages offered


@pytest.mark.parametrize("change, words", [
    ({"verdict": "meh"}, '"verdict"'), ({"verdict": "up", "reason": "wrong_passage"}, '"reason"'),
    ({"reason": "rude"}, '"reason"'), ({"question": "  "}, '"question"'), ({"history": "earlier"}, '"history"'),
    ({"history": [3]}, '"history"'),
])
def test_bad_fields_are_refused_by_name(tiny_built, change, words):
    _, _, p = tiny_built
    args = {"question": METRO, "history": [], "verdict": "down", "reason": None} | change
    with pytest.raises(FeedbackError, match=words):
        feedback.record(args["question"], args["history"], args["verdict"], args["reason"], _shown(p, METRO), p.documents)


@pytest.mark.parametrize("tamper, words", [
    (lambda s: s["answer"].update(quote="臺北捷運於2035年通車。"), "not characters"),  # not the document's text
    (lambda s: s["answer"].update(doc_id="elsewhere.txt"), "not characters"),
    (lambda s: s["answer"].update(start=-1), '"answer"'), (lambda s: s.update(answer="yes"), '"answer"'),
    (lambda s: s["passages"][0].update(doc_id="gone.txt"), "does not hold"),
    (lambda s: s.update(passages=[{"rank": 1}]), '"passages"'), (lambda s: s.update(passages=[s["passages"][0]] * 51), "at most 50"),
])
def test_an_answer_the_index_does_not_hold_is_refused(tiny_built, tamper, words):
    _, _, p = tiny_built
    shown = json.loads(json.dumps(_shown(p, METRO)))
    tamper(shown)
    with pytest.raises(FeedbackError, match=words):
        feedback.record(METRO, [], "up", None, shown, p.documents)


# ---- the file -----------------------------------------------------------------------------


def test_records_append_as_whole_lines_even_from_many_threads(tiny_built, tmp_path):
    _, _, p = tiny_built
    path, rec = tmp_path / "feedback.jsonl", _rec(p, METRO, "up")
    threads = [threading.Thread(target=lambda: [feedback.append(path, rec) for _ in range(25)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = feedback.read(path)
    assert got.errors == [] and len(got.records) == 100 and got.records[0] == rec


def test_bad_lines_are_reported_by_number_and_skipped(tiny_built, tmp_path):
    _, _, p = tiny_built
    good = json.dumps(_rec(p, METRO, "up"), ensure_ascii=False).encode()
    bad = json.loads(good)
    lines = [good, b"{not json", b"", b"\xff\xfe broken", json.dumps(bad | {"verdict": "meh"}).encode(), b"[1, 2]",
             json.dumps(bad | {"answer": {"quote": ""}}).encode(), good]
    path = tmp_path / "feedback.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    got = feedback.read(path)
    assert len(got.records) == 2  # lines 1 and 8
    assert [n for n, _ in got.errors] == [2, 4, 5, 6, 7]  # line 3 is blank
    why = dict(got.errors)
    assert "not UTF-8" in why[4] and '"verdict"' in why[5] and "JSON object" in why[6] and '"answer"' in why[7]


def test_a_missing_or_special_feedback_file_is_one_clear_error(tmp_path, tiny_built):
    with pytest.raises(FeedbackError, match="--feedback FILE"):
        feedback.read(tmp_path / "none.jsonl")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FeedbackError, match="named pipe"):
        feedback.read(fifo)
    with pytest.raises(IndexWriteError, match="cannot write the feedback file"):  # refused, not waited on
        feedback.append(fifo, _rec(tiny_built[2], METRO, "up"))


def test_the_feedback_file_is_beside_the_builds_and_a_rebuild_keeps_it(built_index):
    corpus, index, p = built_index
    path = store.feedback_path(index)
    assert path.parent == index and not path.is_relative_to(index / p.manifest["build"])
    feedback.append(path, _rec(p, METRO, "up"))
    from qa import Pipeline

    p2, _ = Pipeline.build(corpus, index, "hash")
    assert p2.manifest["build"] != p.manifest["build"] and len(feedback.read(path).records) == 1


# ---- export -------------------------------------------------------------------------------


def test_export_follows_the_rules(tiny_built):
    _, _, p = tiny_built
    metro, tea = _shown(p, METRO), _shown(p, TEA)
    recs = [
        _rec(p, METRO, "up"),  # 👍 on an answer: its quote is expected
        _rec(p, OFF, "down", "should_have_answered"),  # then 👍 on the decline: unanswerable (latest wins)
        _rec(p, OFF, "up"),
        _rec(p, FOLLOW, "down", "should_have_declined", history=[FIRST]),  # unanswerable follow-up
        _rec(p, TEA, "down", "wrong_passage", shown=metro),  # 👎 on the metro passage, 👍 on tea's: tea's
        _rec(p, TEA, "up", shown=tea),
        _rec(p, TEA, "down", "wrong_passage", shown=metro),
        _rec(p, FIRST, "up"),  # 👍 then 👎 on the same answer: the right one is unknown
        _rec(p, FIRST, "down", "wrong_sentence"),
        _rec(p, FOLLOW, "down"),  # no reason, no history: another question than the follow-up above
    ]
    out = feedback.export(recs)
    by = {(q["question"], tuple(q.get("history", []))): q for q in out.questions}
    assert set(by) == {(METRO, ()), (OFF, ()), (FOLLOW, (FIRST,)), (TEA, ())}
    assert by[(METRO, ())]["answers"] == [metro["answer"]["quote"]] and by[(METRO, ())]["doc_id"] == "taipei-metro.zh-Hant.txt"
    assert by[(OFF, ())]["answers"] == [] and by[(FOLLOW, (FIRST,))]["answers"] == []
    assert by[(TEA, ())]["answers"] == [tea["answer"]["quote"]] and by[(TEA, ())]["doc_id"] == "longjing-tea.zh-Hans.txt"
    assert [(x["question"], x["answers"], x["reason"]) for x in out.to_label] == [
        (FIRST, None, "wrong_sentence"), (FOLLOW, None, None)]
    assert out.to_label[0]["got"] == _shown(p, FIRST)["answer"] and out.to_label[0]["passages"]
    ids = [x["id"] for x in out.questions + out.to_label]
    assert len(set(ids)) == len(ids) == 6 and ids == [x["id"] for x in feedback.export(recs).questions + out.to_label]


def test_a_withdrawn_rating_is_taken_back(tiny_built):
    _, _, p = tiny_built
    up, gone = _rec(p, METRO, "up"), _rec(p, METRO, "withdrawn")
    assert feedback.export([up, gone]).questions == []
    decline = _rec(p, METRO, "down", "should_have_declined")
    assert feedback.export([decline, up, gone]).questions == []  # every rating of that answer (one per message)
    other = _rec(p, METRO, "down", "should_have_declined", shown=_shown(p, TEA))  # of another answer: it stands
    assert feedback.export([other, up, gone]).questions[0]["answers"] == []


def test_the_export_is_a_question_file_qa_eval_reads_and_to_label_lines_are_refused(tiny_built, tmp_path):
    _, _, p = tiny_built
    out = feedback.export([_rec(p, METRO, "up"), _rec(p, OFF, "up"), _rec(p, TEA, "down", "wrong_passage"),
                           _rec(p, FOLLOW, "up", history=[FIRST])])
    feedback.write_lines(tmp_path / "q.jsonl", out.questions)
    feedback.write_lines(tmp_path / "label.jsonl", out.to_label)
    qs = load_questions(tmp_path / "q.jsonl")
    assert qs.errors == [] and len(qs.questions) == 3
    assert [q.history for q in qs.questions] == [(), (), (FIRST,)]
    assert [bool(q.answers) for q in qs.questions] == [True, False, True]
    labels = load_questions(tmp_path / "label.jsonl")
    assert labels.questions == [] and len(labels.errors) == 1  # "answers": null until a person fills it in


# ---- the chat: 👍 / 👎, the reason, the transcript ------------------------------------------


def _chat(p):
    h = ChatHandlers(p)
    history, *_ = h.respond(FIRST, [], "hybrid", 3, [])
    history, *_ = h.respond(FOLLOW, history, "hybrid", 3, [])
    history, *_ = h.respond(OFF, history, "hybrid", 3, [])
    history, *_ = h.respond(" ", history, "hybrid", 3, [])  # a notice, not an answer
    return h, history


def test_a_reply_keeps_what_it_showed_and_a_turn_finds_it(tiny_built):
    _, _, p = tiny_built
    h, history = _chat(p)
    ts = transcript.turns(history)
    assert [(t.question, t.history, t.reply) for t in ts] == [(FIRST, (), 1), (FOLLOW, (FIRST,), 3), (OFF, (FIRST, FOLLOW), 5)]
    assert ts[1].shown == json.loads(json.dumps(_shown(p, FOLLOW, [FIRST], k=3)))
    assert ts[2].shown["answer"] is None and render.reply_shown(history[6]) is None  # the notice shows nothing
    gradio_parts = [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in history]
    assert transcript.turns(gradio_parts) == ts  # as Gradio 6 sends the history back


def test_thumbs_down_asks_a_reason_and_each_click_is_one_record(built_index):
    _, index, p = built_index
    h, history = _chat(p)
    path = store.feedback_path(index)
    reasons, note, pending = h.rate(history, types.SimpleNamespace(index=3, liked=False))
    assert reasons["visible"] is True and "What was wrong" in note and pending["verdict"] == "down"
    reasons, note, pending = h.give_reason("should_have_declined", pending)
    assert reasons["visible"] is False and pending is None and "Should have declined" in note
    h.rate(history, types.SimpleNamespace(index=1, liked=True))
    h.rate(history, types.SimpleNamespace(index=1, liked=""))  # the 👍 taken back
    reasons, note, pending = h.rate(history, types.SimpleNamespace(index=7, liked=True))  # the notice
    assert pending is None and "Only answers" in note
    recs = feedback.read(path).records
    assert [(r["question"], r["history"], r["verdict"], r["reason"]) for r in recs] == [
        (FOLLOW, [FIRST], "down", None), (FOLLOW, [FIRST], "down", "should_have_declined"),
        (FIRST, [], "up", None), (FIRST, [], "withdrawn", None)]
    assert recs[1]["answer"] == p.ask(FOLLOW, k=3, history=[FIRST]).to_json()["answer"]
    assert recs[1]["index_version"] == p.manifest["build"]


def test_a_forged_reply_is_not_recorded(built_index):
    _, index, p = built_index
    h, history = _chat(p)
    shown = render.reply_shown(history[1])
    shown["answer"]["quote"] = "工信部从未复函。"
    history[1] = {"role": "assistant", "content": render.render_answer(p.ask(FIRST), p.document, shown)}
    reasons, note, pending = h.rate(history, types.SimpleNamespace(index=1, liked=True))
    assert "qa-error" in note and "ask again" in note and pending is None
    assert not store.feedback_path(index).exists()


def test_shown_data_stays_inert_and_round_trips(tiny_built):
    _, _, p = tiny_built
    a = p.ask(METRO)
    shown = _shown(p, METRO) | {"understood_as": '"><script>alert(1)</script>{{x}} $x$ [a](javascript:b)'}
    html = render.render_answer(a, p.document, shown)
    assert "<script" not in html and "{{" not in html and "](" not in html
    assert render.reply_shown({"role": "assistant", "content": html}) == shown


def test_the_conversation_downloads_as_markdown_with_citations(tiny_built, tmp_path):
    _, _, p = tiny_built
    h, history = _chat(p)
    a = p.ask(FOLLOW, history=[FIRST])
    md = transcript.markdown(history)
    assert md.startswith("# ") and f"## 2. {FOLLOW}" in md and f"Understood as: {a.understood_as}" in md
    span = f"characters {a.best.passage.start + a.quote.start}–{a.best.passage.start + a.quote.end}"
    assert f"> {a.quote.text}" in md and f"`{a.best.passage.doc_id}`, ¶ {a.best.passage.paragraph}, {span}" in md
    assert "Not found in the documents" in md and "## 4." not in md  # the empty question is no turn
    assert transcript.md("a*b_[c](d) #1") == r"a\*b\_\[c\](d) \#1"  # no link, no emphasis, no heading
    path = transcript.write_markdown(history, tmp_path)
    assert path.read_text(encoding="utf-8") == md and transcript.write_markdown(history, tmp_path) == path
    assert transcript.markdown([]) == "" and transcript.write_markdown([], tmp_path) is None
    update = h.conversation_file(history)
    assert update["interactive"] is True and open(update["value"], encoding="utf-8").read() == md
    assert h.conversation_file([])["interactive"] is False


def test_writing_a_conversation_removes_the_files_of_chats_older_than_an_hour(tiny_built, tmp_path):
    _, history = _chat(tiny_built[2])
    old, recent = tmp_path / "0123456789abcdef", tmp_path / "fedcba9876543210"
    for folder, age in ((old, 7200), (recent, 600)):
        folder.mkdir()
        (folder / "conversation.md").write_text("earlier chat", encoding="utf-8")
        os.utime(folder, (time.time() - age, time.time() - age))
    path = transcript.write_markdown(history, tmp_path)
    assert path.is_file() and not old.exists() and recent.is_dir()
    os.utime(path.parent, (time.time() - 7200, time.time() - 7200))
    assert transcript.write_markdown(history, tmp_path) == path and path.is_file()  # its own chat's file stays


# ---- POST /api/feedback and the command line ------------------------------------------------


def test_api_feedback_records_the_ask_response_it_rates(built_index):
    _, index, p = built_index
    got = ask(p, {"question": FOLLOW, "history": [FIRST]})
    rec = api_feedback(p, got | {"history": [FIRST], "verdict": "down", "reason": "wrong_passage"})
    assert feedback.read(store.feedback_path(index)).records == [rec]
    assert rec["answer"] == got["answer"] and rec["understood_as"] == got["understood_as"]
    assert [x["passage_id"] for x in rec["passages"]] == [x["passage_id"] for x in got["passages"]]


@pytest.mark.parametrize("body, words, status", [
    ([], "JSON object", 400), ({"verdict": "up"}, '"question"', 400),
    ({"question": METRO, "verdict": "up", "history": ["x"] * 21}, '"history"', 400),
    ({"question": METRO, "verdict": "good"}, '"verdict"', 400),
    ({"question": METRO, "verdict": "up", "answer": {"quote": "假的", "passage_id": "a#0", "doc_id": "python.en.txt",
                                                     "start": 0, "end": 2, "page": None}}, "not characters", 400),
])
def test_api_feedback_refuses_bad_bodies_with_a_message(built_index, body, words, status):
    _, index, p = built_index
    with pytest.raises(ApiError, match=words) as err:
        api_feedback(p, body)
    assert err.value.status == status and not store.feedback_path(index).exists()


def test_api_feedback_over_http_and_a_file_it_cannot_write(built_index):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    _, index, p = built_index
    with TestClient(Starlette(routes=routes(p))) as client:
        got = client.post("/api/ask", json={"question": METRO}).json()
        ok = client.post("/api/feedback", json=got | {"verdict": "up"})
        bad = client.post("/api/feedback", content=b"{oops")
        store.feedback_path(index).unlink()
        store.feedback_path(index).mkdir()  # a folder where the file should be
        full = client.post("/api/feedback", json=got | {"verdict": "up"})
    assert ok.status_code == 200 and ok.json()["answer"] == got["answer"]
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "the request body must be JSON"
    assert full.status_code == 500 and "cannot write the feedback file" in full.json()["error"]["message"]


def test_cli_feedback_export_then_eval_scores_it(built_index, tmp_path):
    _, index, p = built_index
    path = store.feedback_path(index)
    for r in (_rec(p, METRO, "up"), _rec(p, OFF, "up"), _rec(p, FOLLOW, "down", "should_have_declined", history=[FIRST]),
              _rec(p, TEA, "down", "wrong_sentence")):
        feedback.append(path, r)
    with path.open("a", encoding="utf-8") as fh:
        fh.write("not json\n")
    out = tmp_path / "fb.questions.jsonl"
    res = run_qa("feedback", "export", out, "--index", index)
    assert res.returncode == 0, res.stderr
    assert f"{path}:5: skipped" in res.stderr and "wrote 3 questions (1 answerable, 2 unanswerable)" in res.stdout
    assert "1 to label" in res.stdout and (tmp_path / "fb.questions.to-label.jsonl").is_file()
    res = run_qa("eval", out, "--index", index, "--json")
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)["modes"]["hybrid"]
    # METRO is answered from the passage its 👍 named; OFF is declined again; the follow-up is answered
    assert (m["n"], m["n_answerable"], m["hit@1"], m["quote_accuracy"]) == (3, 1, 1.0, 1.0)
    assert (m["abstained_unanswerable"], m["answered_wrongly"], m["followup_n"]) == (1, 1, 1)
    res = run_qa("feedback", "export", out, "--index", tmp_path / "nothing")
    assert res.returncode == 1 and res.stderr.count("\n") == 1 and "no feedback file" in res.stderr
