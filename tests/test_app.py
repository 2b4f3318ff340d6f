"""Fast tests of the chat app: HTML rendering helpers, the handlers, and the command line.

The pipeline here uses the "hash" encoder (no model) with its index in tmp_path.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import stop_app, wait_for_app

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gradio as gr  # noqa: E402

import app  # noqa: E402
from qa import Pipeline, QAError  # noqa: E402
from qa import render as R  # noqa: E402
from qa import feedback, serve  # noqa: E402
from qa.schema import MODES, Answer, Block, Document, Hit, Passage, Quote  # noqa: E402
from qa.ingest import READ_SUFFIXES  # noqa: E402

PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>window.__pwned=1</script>",
    "[link](javascript:alert(1))",
    "![img](x)",
    '<a href="javascript:alert(1)">x</a>',
    "**bold** _it_ `code` $$x^2$$ ${alert(1)} {{constructor}} | a | b |",
    "&lt;already escaped&gt; & \"quotes\" 'single'",
]


# ---- helpers ------------------------------------------------------------------------


class _Tags(HTMLParser):
    """Collects start tags, checks nesting, and rebuilds the text (<br> as newline)."""

    VOID = {"br", "img", "input", "hr", "meta", "link"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.starts: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.balanced = True

    def handle_starttag(self, tag, attrs):
        self.starts.append((tag, dict(attrs)))
        if tag == "br":
            self.text.append("\n")
        elif tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.balanced = False

    def handle_data(self, data):
        self.text.append(data)


def parse(markup: str) -> _Tags:
    p = _Tags()
    p.feed(markup)
    p.close()
    assert p.balanced and not p.stack, f"unbalanced markup: {markup[:200]}"
    return p


def element_texts(markup: str, tag: str, cls: str | None = None) -> list[str]:
    """Text inside each <tag class=cls> (non-nested use only)."""
    klass = f'class="{re.escape(cls)}"' if cls else ""
    pat = rf"<{tag}\b[^>]*{klass}[^>]*>(.*?)</{tag}>"
    return [html.unescape(re.sub(r"<br>", "\n", re.sub(r"<(?!br>)[^>]+>", "", m))) for m in re.findall(pat, markup, re.S)]


def make_doc(text: str, doc_id: str = "docs/安全<b>測試</b>.txt", title: str = "標題 <i>T</i>", dropped=()) -> Document:
    return Document(doc_id=doc_id, text=text, title=title, date="2024-01-02", blocks=(Block(0, len(text), 1),), dropped=tuple(dropped))


def make_answer(doc: Document, start: int, end: int, quote: tuple[int, int] | None, extra_hits: int = 2, notice=None) -> Answer:
    def passage(i, s, e, para):
        return Passage(f"{doc.doc_id}#{i}", doc.doc_id, doc.text[s:e], s, e, doc.title, para)

    hits = [Hit(passage(0, start, end, 3), 0.91, 1)]
    for i in range(extra_hits):
        hits.append(Hit(passage(i + 1, 0, min(len(doc.text), 12), 1), 0.5 - i / 10, i + 2))
    q = None
    if quote is not None:
        q = Quote(doc.text[start + quote[0] : start + quote[1]], quote[0], quote[1])
    return Answer("問題?", tuple(hits), q, "hybrid", 0.87 if q else 0.1, notice, {"encode": 3.0, "search": 1.0, "answer": 1.0})


# ---- escaping -------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS)
def test_esc_leaves_no_markup_or_markdown_and_round_trips(payload):
    out = R.esc(payload)
    for bad in ("<", ">", "[", "]", "(", ")", "`", "*", "$", "{", "|", "!"):
        assert bad not in out, (bad, out)
    assert html.unescape(out) == payload  # shown to the reader exactly as written


def test_esc_newlines_become_br_only_when_asked():
    assert R.esc("a\nb") == "a\nb"
    assert R.esc("a\nb\r\nc", br=True) == "a<br>b<br>c"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_every_renderer_keeps_payloads_inert(payload):
    text = f"前文。{payload}答句在這裡。後文\n第二行{payload}"
    doc = make_doc(text, doc_id=f"x{payload}.txt", title=f"T{payload}")
    s = text.index("答句")
    ans = make_answer(doc, 0, len(text), (s, s + 6), notice=f"note {payload}")
    outputs = [
        R.render_answer(ans, lambda _id: doc),
        R.render_abstain(make_answer(doc, 0, len(text), None), lambda _id: doc),
        R.render_document(doc, (0, len(text)), (s, s + 6), heading=payload),
        R.render_question(payload),
        R.render_message(payload, "error"),
        R.citation(ans.hits[0].passage, doc),
    ]
    for out in outputs:
        tags = {t for t, _ in parse(out).starts}
        assert tags <= {"div", "span", "mark", "blockquote", "details", "summary", "ol", "li", "br", "p", "strong"}, tags
        for _, attrs in parse(out).starts:
            assert not any(k.startswith("on") or k in ("href", "src", "style") for k in attrs), attrs
        assert "](" not in out and "![" not in out and "<script" not in out and "<img" not in out
    # the payload is still there as text for the reader
    assert payload in "".join(parse(outputs[2]).text)
    assert payload in "".join(parse(outputs[3]).text)


# ---- highlighting -------------------------------------------------------------------------


def test_highlight_wraps_exact_offsets():
    out = R.highlight("甲乙丙丁戊己", [R.Span(2, 4, "mark", "qa-hl")])
    assert out == '甲乙<mark class="qa-hl">丙丁</mark>戊己'


def test_highlight_nested_and_overlapping_spans_stay_well_formed():
    text = "0123456789<>"
    spans = [R.Span(0, 8, "span", "a"), R.Span(3, 11, "span", "b"), R.Span(4, 6, "mark", "c")]
    out = R.highlight(text, spans)
    p = parse(out)
    assert "".join(p.text) == text
    assert element_texts(out, "mark", "c") == ["45"]
    # out-of-range and empty spans are ignored, not errors
    assert R.highlight("abc", [R.Span(5, 9), R.Span(2, 2), R.Span(-3, 1, "mark")]) == "<mark>a</mark>bc"


def test_render_answer_marks_the_quote_inside_its_passage():
    text = "導言。\n蘇州區塊鏈發展水平已從2019年的第18名,躍升至2021年的第4名。其他內容<b>粗</b>。"
    doc = make_doc(text)
    start = text.index("蘇州")
    q0 = text.index("躍升") - start
    q1 = text.index("。其他") + 1 - start
    ans = make_answer(doc, start, len(text), (q0, q1))
    out = R.render_answer(ans, lambda _id: doc)
    assert element_texts(out, "mark", "qa-hl") == [ans.quote.text]
    assert element_texts(out, "blockquote", "qa-passage") == [text[start:]]
    assert "qa-answer" in out and "<details" in out and "來源 / Sources (2)" in out
    # citation: title, file name, paragraph, absolute span of the quote
    cite = element_texts(out, "div", "qa-cite")[0]
    assert "《標題 <i>T</i>》" in cite
    assert "docs/安全<b>測試</b>.txt" in cite
    assert "第 3 段" in cite and "¶3" in cite
    assert f"{start + q0}–{start + q1}" in cite
    assert text[start + q0 : start + q1] == ans.quote.text


def test_citation_line_defaults_to_the_passage_span():
    doc = make_doc("abcdefghij")
    p = Passage("d#0", doc.doc_id, "cdef", 2, 6, doc.title, 7)
    line = html.unescape(re.sub(r"<[^>]+>", "", R.citation(p, doc)))
    assert "2–6" in line and "¶7" in line and doc.doc_id in line and "2024-01-02" in line


def test_render_abstain_says_not_found_and_lists_closest():
    doc = make_doc("一些不相關的內容。" * 5)
    ans = make_answer(doc, 0, 20, None, extra_hits=4)
    out = R.render_answer(ans, lambda _id: doc)
    assert 'class="qa-reply qa-abstain"' in out
    assert "文件中沒有找到答案" in out and "Not found in the documents" in out
    assert "可能相關 / Possibly related" in out
    assert out.count('class="qa-source"') == 5  # 3 shown + 2 under "more sources"
    assert "<mark" not in out


def test_notice_is_shown():
    doc = make_doc("內容。")
    out = R.render_answer(make_answer(doc, 0, 3, (0, 3), notice="question truncated"), lambda _id: doc)
    assert "qa-notice" in out and "question truncated" in out


def test_render_document_keeps_text_in_place_with_spans():
    text = "導覽 | 首頁 | 新聞\n標題行\n正文第一句。答句在此。\n版權所有 <script>x</script>"
    nav = (0, text.index("\n"))
    head = (nav[1] + 1, text.index("\n", nav[1] + 1))
    legal = (text.index("版權"), len(text))
    doc = make_doc(text, dropped=[(*nav, "navigation"), (*head, "heading"), (*legal, "legal")])
    ps = text.index("正文")
    pe = text.index("\n版權")
    qs = text.index("答句")
    out = R.render_document(doc, (ps, pe), (qs, qs + 5))
    body = out[out.index('<div class="qa-doc-body">') : -len("</div>")]  # drop the wrapper's close
    assert "".join(parse(body).text) == text  # every character, in order, nothing added
    assert element_texts(body, "mark", "qa-hl") == ["答句在此。"]
    assert "".join(element_texts(body, "span", "qa-cited")) == text[ps:pe]
    greyed = "".join(re.findall(r'<span class="qa-dropped"[^>]*>(.*?)</span>', body))
    assert "導覽" in html.unescape(greyed) and "版權所有" in html.unescape(greyed)
    assert 'class="qa-struct"' in body
    assert "<script>" not in out


def test_source_refs_and_labels():
    doc = make_doc("abc。def。ghi。")
    ans = make_answer(doc, 0, 8, (4, 8), extra_hits=1)
    refs = R.source_refs(ans)
    assert [r["rank"] for r in refs] == [1, 2]
    assert refs[0]["quote"] == [4, 8] and refs[1]["quote"] is None
    assert R.source_label(refs[0]).startswith("#1 ✓ · 0.910 · ¶3")
    panel = R.render_ref(refs[0], lambda _id: doc)
    body = panel[panel.index('<div class="qa-doc-body">') :]
    assert element_texts(body, "mark", "qa-hl") == [doc.text[4:8]]


# ---- the app around a real (hash-encoder) pipeline --------------------------------------


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return Pipeline.open(ROOT / "corpus", tmp_path_factory.mktemp("index") / "index", encoder="hash")


def test_build_app_constructs(pipeline):
    demo = app.build_app(pipeline)
    assert isinstance(demo, gr.Blocks)
    chat = [b for b in demo.blocks.values() if isinstance(b, gr.Chatbot)]
    assert len(chat) == 1
    assert chat[0].render_markdown is False and chat[0].sanitize_html is True
    assert chat[0].latex_delimiters == []
    assert "copy" in (chat[0].buttons or [])
    assert demo._queue is not None and (demo._queue.default_concurrency_limit or 0) > 1
    # the file picker offers every kind of file a corpus scan reads (.markdown and .text too)
    (picker,) = [b for b in demo.blocks.values() if isinstance(b, gr.File) and b.file_count == "multiple"]
    assert set(picker.file_types) == set(READ_SUFFIXES) and ".markdown" in picker.file_types
    radios = {b.elem_id: b for b in demo.blocks.values() if isinstance(b, gr.Radio)}
    assert [v for _, v in radios["qa-mode"].choices] == list(MODES)  # the one list of modes, in its order
    assert [v for _, v in radios["qa-reason"].choices] == list(feedback.REASONS) and not radios["qa-reason"].visible
    assert chat[0].feedback_options == ("Like", "Dislike")  # 👍 / 👎 on each reply (a 👎 then shows the reasons)
    assert any(isinstance(b, gr.Slider) for b in demo.blocks.values())
    labels = [getattr(b, "value", "") for b in demo.blocks.values() if isinstance(b, gr.Button)]
    assert "提問 / Ask" in labels and "新對話 / New chat" in labels


def test_respond_off_topic_question_abstains(pipeline):
    h = app.ChatHandlers(pipeline)
    history, box, pick, panel, refs = h.respond("红烧肉怎么做？", [], "hybrid", 5, [])
    assert box == ""
    assert [m["role"] for m in history] == ["user", "assistant"]
    reply = history[-1]["content"]
    assert "qa-abstain" in reply and "文件中沒有找到答案" in reply
    assert len(refs) == 5 and pick["choices"][0][1] == "1"
    assert 'class="qa-doc-body"' in panel


def test_respond_empty_question_is_friendly(pipeline):
    h = app.ChatHandlers(pipeline)
    for empty in ("", "   \n\t ", None):
        history, box, *_ , refs = h.respond(empty, [{"role": "assistant", "content": "earlier"}], "hybrid", 5, [])
        assert len(history) == 2 and history[0]["content"] == "earlier"
        assert "請輸入" in history[-1]["content"] and "Traceback" not in history[-1]["content"]
        assert refs == []


def test_respond_escapes_the_question_and_keeps_history(pipeline):
    h = app.ChatHandlers(pipeline)
    history, *_ = h.respond("<img src=x onerror=alert(1)> 苏州?", [], "bm25", 3, [])
    history, *_ = h.respond("相城区", history, "dense", 2.0, [])
    assert len(history) == 4
    assert "<img" not in history[0]["content"] and "&#60;img src=x onerror=alert&#40;1&#41;&#62;" in history[0]["content"]


def test_respond_reads_a_follow_up_with_the_questions_asked_before(pipeline, monkeypatch):
    h = app.ChatHandlers(pipeline)
    history, *_ = h.respond('苏州区块链发展水平"怎么样"？<b>', [], "hybrid", 3, [])
    asked = []
    real = pipeline.ask
    monkeypatch.setattr(pipeline, "ask", lambda q, k, mode, history=(): asked.append(list(history)) or real(
        q, k=k, mode=mode, history=history))
    history, *_ = h.respond("它排名第几？", history, "hybrid", 3, [])
    assert asked == [['苏州区块链发展水平"怎么样"？<b>']]  # the earlier question as typed, not its HTML
    assert R.asked_questions(history) == ['苏州区块链发展水平"怎么样"？<b>', "它排名第几？"]
    reply = history[-1]["content"]
    assert "理解为 / Understood as:" in reply and "它排名第几" in reply


@pytest.mark.parametrize(
    "question",
    ["\x01\x02 苏州?", "🙂🙂🙂", "مرحبا بالعالم", "<script>alert(1)</script>", "[x](javascript:alert(1)) ![i](x)",
     "？？？！！", "相城区" * 40_000],
    ids=["control", "emoji", "rtl", "script", "markdown", "punctuation", "120k-chars"],
)
def test_respond_hostile_questions_get_a_reply(pipeline, question):
    """anything typed gets a sensible, inert reply in the app, never an error page."""
    h = app.ChatHandlers(pipeline)
    history, *_ = h.respond(question, [], "hybrid", 5, [])
    assert [m["role"] for m in history] == ["user", "assistant"]
    reply = history[-1]["content"]
    assert "qa-error" not in reply and "Traceback" not in reply
    shown = history[0]["content"] + reply
    assert "<script" not in shown and "<a " not in shown and "<img" not in shown  # payloads stay text
    if len(question) > app.MAX_QUESTION_CHARS:
        assert f"first {app.MAX_QUESTION_CHARS} of {len(question)} characters" in reply  # the truncation notice


def test_qa_errors_become_chat_messages(pipeline):
    h = app.ChatHandlers(pipeline)
    history, *_ = h.respond("苏州", [], "nonsense-mode", 5, [])
    assert "qa-error" in history[-1]["content"] and "mode" in history[-1]["content"]

    class Broken:
        def ask(self, *a, **k):
            raise QAError("index <b>gone</b>")

    class Crashing:
        def ask(self, *a, **k):
            raise RuntimeError("boom")

    history, *_ = app.ChatHandlers(Broken()).respond("q", [], "hybrid", 5, [])
    assert "index &#60;b&#62;gone&#60;/b&#62;" in history[-1]["content"]
    history, *_ = app.ChatHandlers(Crashing()).respond("q", [], "hybrid", 5, [])
    assert "qa-error" in history[-1]["content"] and "boom" not in history[-1]["content"]


def test_a_question_during_the_warm_up_waits_for_it(pipeline):
    warmed, seen = threading.Event(), []

    class Watching:
        def __getattr__(self, name):
            return getattr(pipeline, name)

        def ask(self, *a, **k):
            seen.append(warmed.is_set())
            return pipeline.ask(*a, **k)

    timer = threading.Timer(0.3, warmed.set)
    timer.start()
    history, *_ = app.ChatHandlers(Watching(), warmed).respond("苏州", [], "hybrid", 5, [])
    assert seen == [True] and "qa-error" not in history[-1]["content"]


def test_a_failed_warm_up_still_lets_questions_through(pipeline, monkeypatch, caplog):
    warmed = threading.Event()
    monkeypatch.setattr(pipeline, "warm", lambda: 1 / 0)
    app._warm(pipeline, warmed)
    assert warmed.is_set() and "warm-up failed" in caplog.text


def test_show_source_and_clear(pipeline):
    h = app.ChatHandlers(pipeline)
    _, _, pick, panel, refs = h.respond("苏州区块链发展水平在2021年排名第几？", [], "hybrid", 4, [])
    second = h.show_source("2", refs)
    assert "#2 · score" in html.unescape(second) and 'class="qa-cited"' in second
    assert "qa-doc-empty" in h.show_source("9", refs)
    history, box, pick, panel, refs = h.clear()
    assert history == [] and refs == [] and pick["choices"] == [] and "qa-doc-empty" in panel


# ---- oversize and malformed input ------------------------------------------------------


class Untouchable(str):
    """A question that fails the test when anything but len() and slicing reads it (a method call:
    strip, split, encode, ...), to show the handler cuts it before any work that grows with it."""

    def __getattribute__(self, name):
        raise AssertionError(f"the handler called .{name}() on the whole oversize question")


def test_respond_cuts_an_oversize_question_first_and_echoes_only_that(pipeline):
    """a 10M-character question was echoed whole into the history (a 60 MB response)."""
    cap = app.MAX_QUESTION_CHARS
    question = Untouchable("苏州区块链" * 2_000_000)
    assert len(question) == 10_000_000
    history, box, *_ = app.ChatHandlers(pipeline).respond(question, [], "hybrid", 5, [])
    assert [m["role"] for m in history] == ["user", "assistant"] and box == ""
    echoed = html.unescape("".join(parse(history[0]["content"]).text))
    assert echoed == str.__str__(question)[:cap]  # the capped text, nothing more
    reply = history[1]["content"]
    assert f"question truncated to its first {cap} of 10000000 characters" in reply and "qa-notice" in reply
    assert "qa-error" not in reply
    assert sum(len(m["content"]) for m in history) < 20_000  # was over 10,000,000


def test_respond_caps_before_an_error_too(pipeline):
    history, *_ = app.ChatHandlers(pipeline).respond("x" * 50_000, [], "nonsense-mode", 5, [])
    assert len(history[0]["content"]) < 2 * app.MAX_QUESTION_CHARS + 100  # the capped text, shown and in data-q
    assert "qa-error" in history[1]["content"] and "of 50000 characters" in history[1]["content"]


@pytest.mark.parametrize(
    "message, k, history, expected",
    [
        (123, 5, [], "question=123; expected text"),
        ("苏州", "abc", [], "k=&#x27;abc&#x27;; expected a whole number of passages from 1 to 10"),
        ("苏州", float("nan"), [], "k=nan;"),
        ("苏州", 0, [], "k=0;"),
        ("苏州", 11, [], "k=11;"),
        ("苏州", 2.5, [], "k=2.5;"),
        ("苏州", True, [], "k=True;"),
        ("苏州", 10**400, [], "k=1000000000"),
        ("苏州", None, "not a list", "k=None;"),
    ],
    ids=["question-number", "k-text", "k-nan", "k-0", "k-11", "k-2.5", "k-bool", "k-huge-int", "history-text"],
)
def test_respond_reports_bad_inputs_in_the_chat_without_a_traceback(pipeline, caplog, message, k, history, expected):
    """k='abc' raised inside the handler and logged a traceback."""
    out, *_ = app.ChatHandlers(pipeline).respond(message, history, "hybrid", k, [])
    assert "qa-error" in out[-1]["content"] and expected in out[-1]["content"], out[-1]["content"]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_respond_example_without_event_data_is_an_empty_question(pipeline):
    history, *_ = app.ChatHandlers(pipeline).respond_example([], "hybrid", 5, [], None)
    assert "請輸入" in history[-1]["content"]


@pytest.fixture(scope="module")
def events(pipeline):
    """The app's event functions by handler name."""
    return {f.name: f for f in app.build_app(pipeline).fns.values()}


@pytest.mark.parametrize(
    "inputs, expected",
    [
        (["苏州", [], "hybrid", 5, None], None),
        ([None, [], "dense", 1.0, None], None),
        ([123, [], "hybrid", 5, None], "message=123; expected text"),
        (["苏州", [], "hybrid", "abc", None], "k='abc'; expected a number from 1 to 10"),
        (["苏州", [], "hybrid", None, None], "k=None; expected a number from 1 to 10"),
        (["苏州", [], "hybrid", float("inf"), None], "k=inf;"),
        (["苏州", [], "hybrid", 10**9, None], "k=1000000000;"),
        (["苏州", [], 7, 5, None], "mode=7; expected one of 'hybrid', 'dense', 'bm25'"),
        (["苏州", "xx", "hybrid", 5, None], "history='xx'; expected a list of chat messages"),
        (["苏州", [1, 2], "hybrid", 5, None], "history=[1, 2];"),
        (["苏州" * 1000, [], "hybrid", "k" * 1000, None], "k='kkkkkkkkk"),
        (["苏州", []], "expected the inputs (message, history, mode, k), got 2 values"),
        (["苏州", [], "hybrid", 10**400, None], "k=1000000000"),
        (["苏州", [], "hybrid", 5], "expected the inputs (message, history, mode, k) and null for refs"),
        ("苏州", "expected a list of the inputs (message, history, mode, k), got '苏州'"),
    ],
)
def test_request_problem_names_the_bad_input(events, inputs, expected):
    problem = serve.request_problem(events["respond"], inputs)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and problem.startswith(expected) and "\n" not in problem and len(problem) < 200, problem


def test_a_malformed_call_is_a_clear_error_and_one_log_line(pipeline, caplog):
    """Gradio printed a traceback for each malformed call; the app raises gr.Error without one."""
    demo = app.build_app(pipeline)
    respond = next(f for f in demo.fns.values() if f.name == "respond")
    good = asyncio.run(demo.process_api(block_fn=respond, inputs=["苏州", [], "hybrid", 5, None], state=None))
    assert "qa-answer" in str(good["data"][0]) and not caplog.records
    for block_fn, inputs, expected in [
        (respond, ["苏州", [], "hybrid", "abc", None], "k='abc'; expected a number"),  # refused before Gradio's checks
        (respond, ["苏州", [{"bogus": 1}], "hybrid", 5, None], "malformed call: ValidationError"),  # refused by them
    ]:
        caplog.clear()
        with pytest.raises(gr.Error) as raised:
            asyncio.run(demo.process_api(block_fn=block_fn, inputs=inputs, state=None, event_data=None))
        assert raised.value.print_exception is False  # Gradio prints no traceback for it
        assert html.unescape(raised.value.message).startswith(expected), raised.value.message
        assert [(r.levelname, r.exc_info) for r in caplog.records if r.levelno >= logging.INFO] == [("WARNING", None)]
        assert expected in caplog.records[-1].getMessage()


# ---- command line -------------------------------------------------------------------


def test_main_bad_corpus_prints_one_line_and_fails(tmp_path, capsys):
    rc = app.main(["--corpus", str(tmp_path / "missing"), "--index", str(tmp_path / "idx"), "--encoder", "hash",
                   "--host", "127.0.0.1", "--port", str(free_port())])  # the address is checked first
    assert rc != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "missing" in err[-1]
    assert not any("Traceback" in line for line in err)


@pytest.mark.parametrize("content, message", [
    (None, "cannot read config file"),
    ('{"upload": {"files": 0}}', "upload.files=0; expected 1 or more"),
])
def test_main_bad_config_prints_one_line_and_fails(tmp_path, capsys, content, message):
    config = tmp_path / "config.json"
    if content is not None:
        config.write_text(content, encoding="utf-8")
    rc = app.main(["--config", str(config), "--corpus", str(tmp_path), "--index", str(tmp_path / "idx"),
                   "--encoder", "hash", "--host", "127.0.0.1", "--port", str(free_port())])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: ") and message in err[-1]
    assert not (tmp_path / "idx").exists()  # nothing built


def test_host_and_port_default_from_env(monkeypatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8123")
    args = app.parse_args([])
    assert (args.host, args.port, args.corpus, args.index) == ("0.0.0.0", 8123, None, "index")
    monkeypatch.delenv("GRADIO_SERVER_NAME")
    monkeypatch.delenv("GRADIO_SERVER_PORT")
    args = app.parse_args(["--port", "9000"])
    assert (args.host, args.port) == ("127.0.0.1", 9000)


# ---- the command line and the server, in subprocesses ----------------------------------


def run_app(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``python app.py ARGS`` with ``env`` added to the environment (a None value removes a name)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GRADIO_SERVER_")}
    for name, value in (env or {}).items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    return subprocess.run([sys.executable, str(ROOT / "app.py"), *args], cwd=ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(done: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit status 2, and stderr one ``error: ...`` line naming each of ``needles``; returns it."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    "args, env, needles",
    [
        (["--port", "99999"], {}, ["--port='99999' is not a port", "from 1 to 65535"]),
        (["--port", "abc"], {}, ["--port='abc' is not a port", "from 1 to 65535"]),
        (["--port", "0"], {}, ["--port='0'"]),
        ([], {"GRADIO_SERVER_PORT": "abc"}, ["GRADIO_SERVER_PORT='abc' is not a port", "or unset it"]),
        ([], {"GRADIO_SERVER_PORT": "70000"}, ["GRADIO_SERVER_PORT='70000'"]),
        (["--host", "no.such.host.invalid"], {}, ["--host='no.such.host.invalid' is not a known address", "127.0.0.1"]),
        ([], {"GRADIO_SERVER_NAME": "no.such.host.invalid"}, ["GRADIO_SERVER_NAME='no.such.host.invalid'", "or unset it"]),
        (["--host", ""], {}, ["--host='' is empty"]),
        (["--bogus"], {}, ["unrecognized arguments: --bogus", "--help"]),
    ],
    ids=["port-too-big", "port-text", "port-zero", "env-port-text", "env-port-too-big", "host-unknown", "env-host-unknown",
         "host-empty", "unknown-flag"],
)
def test_bad_host_or_port_is_one_line_before_the_index_loads(tmp_path, args, env, needles):
    """GRADIO_SERVER_PORT=abc crashed inside `import gradio`, --port 99999 raised OverflowError
    and a bad --host read "Cannot find empty port". The index is never opened (no 'loading' line)."""
    done = run_app("--corpus", str(tmp_path / "missing"), "--index", str(tmp_path / "idx"), "--encoder", "hash", *args,
                   env=env)
    assert_one_line_error(done, *needles)


def test_a_host_of_another_machine_is_one_line(tmp_path):
    with socket.socket() as sock:
        try:
            sock.bind(("192.0.2.1", 0))  # TEST-NET-1: bindable only where non-local binds are allowed
            pytest.skip("this machine lets a program bind any address")
        except OSError:
            pass
    done = run_app("--index", str(tmp_path / "idx"), "--host", "192.0.2.1")
    assert_one_line_error(done, "--host='192.0.2.1' is not an address of this machine")


def test_a_port_in_use_is_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        done = run_app("--index", str(tmp_path / "idx"), "--port", port)
        assert_one_line_error(done, f"port {port} on 127.0.0.1 is already in use", "--port")
        done = run_app("--index", str(tmp_path / "idx"), env={"GRADIO_SERVER_PORT": port})
        assert_one_line_error(done, f"port {port} on 127.0.0.1 is already in use", "GRADIO_SERVER_PORT")


def test_help_does_not_import_gradio():
    """--help stays quick: gradio (about 2 s to import) is imported only to serve."""
    done = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "app.py"), "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--port" in done.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert imported and not [m for m in imported if m.split(".")[0] == "gradio"]


def _post(url: str, payload: object | bytes) -> tuple[int, dict]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _ask(base: str, data: object, endpoint: str = "chat") -> tuple[str, object]:
    """POST ``data`` to /gradio_api/call/ENDPOINT (the chat's event by default) and read the outcome:
    ('complete', outputs) or ('error', message)."""
    status, body = _post(f"{base}/gradio_api/call/{endpoint}", {"data": data})
    assert status == 200, body
    with urllib.request.urlopen(f"{base}/gradio_api/call/{endpoint}/{body['event_id']}", timeout=60) as response:
        stream = response.read().decode()
    event = re.search(r"^event: (\w+)$", stream, re.M).group(1)
    payload = json.loads(re.search(r"^data: (.*)$", stream, re.M).group(1))
    return event, payload["error"] if event == "error" else payload


@pytest.mark.slow
def test_the_server_answers_malformed_requests_with_one_log_line_each(tiny_built, tmp_path):
    """End to end: the real app on 127.0.0.1 gets oversize and malformed requests; each
    gets a clear error back and one line in the log, and the server never logs a traceback."""
    corpus, index, _ = tiny_built
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADIO_")}
    # the flags win over bad GRADIO_SERVER_* values, which gradio must not see either (it reads them at import)
    env.update(GRADIO_ANALYTICS_ENABLED="False", GRADIO_SERVER_PORT="abc", GRADIO_SERVER_NAME="no.such.host.invalid")
    with open(log_path, "w") as log_file:
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--corpus", str(corpus), "--index", str(index), "--encoder", "hash",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        wait_for_app(server, base, log_path)
        started = len(log_path.read_text().splitlines())

        event, outputs = _ask(base, ["苏州", [], "hybrid", 5])
        assert event == "complete" and "qa-answer" in json.dumps(outputs, ensure_ascii=False)
        event, outputs = _ask(base, ["x" * 1_000_000, [], "hybrid", 5])  # a 1 MB body: under the limit, cut
        assert event == "complete" and len(json.dumps(outputs)) < 50_000
        assert "of 1000000 characters" in json.dumps(outputs)

        bad_calls = [
            (["苏州", [], "hybrid", "abc"], "k='abc'; expected a number from 1 to 10"),
            ([123, [], "hybrid", 5], "message=123; expected text"),
            (["苏州", [], 7, 5], "mode=7; expected one of"),
            (["苏州", "xx", "hybrid", 5], "history='xx'; expected a list of chat messages"),
            (["苏州"], "expected the inputs (message, history, mode, k), got 1 value"),
        ]
        for data, expected in bad_calls:
            event, error = _ask(base, data)
            assert event == "error" and html.unescape(error).startswith(expected), error
        bad_requests = [
            ("/gradio_api/call/ask", b"x" * (serve.MAX_REQUEST_BYTES + 1), 413, "request body over 4 MiB refused"),
            ("/gradio_api/call/nope", {"data": []}, 400, "malformed request: FnIndexInferError"),
            ("/gradio_api/call/v2/ask", {"bogus": 5}, 400, "malformed request: TypeError: Parameter `bogus`"),
            ("/gradio_api/queue/join", {"data": [], "fn_index": 999, "session_hash": "s"}, 400, "malformed request: KeyError"),
        ]
        for path, payload, status, expected in bad_requests:
            got_status, body = _post(base + path, payload)
            assert got_status == status and body["error"].startswith(expected), (path, got_status, body)
    finally:
        stop_app(server)
    lines = log_path.read_text().splitlines()
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]
    logged = lines[started:]
    assert len(logged) == len(bad_calls) + len(bad_requests), logged
    assert all(line.startswith("WARNING qa.app: rejected ") for line in logged), logged
