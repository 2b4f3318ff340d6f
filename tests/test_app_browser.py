"""End-to-end: the real app in headless Chromium.

One app runs on the real corpus with the real default encoder (index built in a
tmp folder, ~6-10 s); a second runs on a tmp corpus whose document carries HTML,
script and Markdown payloads (hash encoder, for speed). Each test opens its own
page, so each is a fresh chat session and the tests do not depend on order.

Needs Debian's chromium (apt-get install chromium) and, for readable screenshots,
fonts-noto-cjk. Skipped when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.screenshot import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402  (one launch recipe for both)

ANSWER_TIMEOUT_MS = 120_000  # the real encoder on a busy 2-core CI box can take seconds per question

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} missing: apt-get install chromium"),
]

XSS_TEXT = """安全測試文件 <img src=x onerror=alert(1)>

這份文件用來測試網頁顯示是否安全。河馬喜歡在泥巴裡打滾，河馬每天要吃很多青草。
危險的圖片標籤<img src=x onerror=alert(1)>和腳本<script>window.__pwned=1</script>都必須顯示成文字。
連結[link](javascript:alert(2))與圖片![img](x)以及<a href="javascript:alert(3)">點我</a>也不能變成真的連結。

另一段落：長頸鹿的脖子很長，長頸鹿吃樹葉。
"""
XSS_QUESTION = "河馬喜歡在泥巴裡打滾嗎？危險的圖片標籤和腳本"


def _serve(pipeline):
    from app import build_app

    demo = build_app(pipeline)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="module")
def real_app(tmp_path_factory):
    """The app on the real corpus with the real default encoder; index in tmp."""
    from qa import Pipeline

    pipeline = Pipeline.open(ROOT / "corpus", tmp_path_factory.mktemp("real") / "index")
    demo, url = _serve(pipeline)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def xss_app(tmp_path_factory):
    """The app on a tmp corpus holding HTML/script/Markdown payloads (hash encoder)."""
    from qa import Pipeline

    base = tmp_path_factory.mktemp("xss")
    corpus = base / "corpus"
    corpus.mkdir()
    (corpus / "xss-<i>payload.txt").write_text(XSS_TEXT, encoding="utf-8")
    (corpus / "other.txt").write_text("其他文件\n\n蘇州的園林很有名，拙政園是蘇州最大的園林。\n", encoding="utf-8")
    pipeline = Pipeline.open(corpus, base / "index", encoder="hash")
    demo, url = _serve(pipeline)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    ctx.grant_permissions(["clipboard-read", "clipboard-write"])
    pg = ctx.new_page()
    pg.dialogs = []  # any alert() would land here
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.set_default_timeout(30_000)
    yield pg
    ctx.close()


def ask(page, question: str, enter: bool = False):
    """Type a question, press Ask (or Enter), wait for the new reply; return that reply's locator."""
    replies = page.locator("#qa-chat .qa-reply")
    before = replies.count()
    page.locator("#qa-input textarea").fill(question)
    if enter:
        page.locator("#qa-input textarea").press("Enter")
    else:
        page.locator("#qa-ask").click()
    page.wait_for_function(
        "n => document.querySelectorAll('#qa-chat .qa-reply').length > n", arg=before, timeout=ANSWER_TIMEOUT_MS
    )
    return replies.nth(before)


def test_answer_quotes_highlights_and_cites(real_app, page):
    page.goto(real_app)
    reply = ask(page, "苏州区块链发展水平在2021年排名第几？")
    assert "qa-answer" in reply.get_attribute("class")
    quote = reply.locator("blockquote.qa-passage")
    assert "躍升至2021年的第4名" in quote.inner_text()
    mark = quote.locator("mark")
    assert mark.count() == 1 and "躍升至2021年的第4名" in mark.inner_text()
    cite = reply.locator(".qa-cite").first.inner_text()
    assert "suzhou-blockchain-pilot-zone.zh-Hant.txt" in cite and "¶" in cite
    # the other passages are in a collapsed sources list with scores
    details = reply.locator("details.qa-sources")
    assert details.count() == 1 and details.get_attribute("open") is None
    details.locator("summary").click()
    assert details.locator("li.qa-source .qa-score").count() >= 1
    # the document panel shows the whole cited document with the sentence highlighted in place
    panel = page.locator("#qa-doc")
    panel_mark = panel.locator(".qa-doc-body mark.qa-hl")
    panel_mark.wait_for()
    assert mark.inner_text() == panel_mark.inner_text()
    assert "suzhou-blockchain-pilot-zone.zh-Hant.txt" in panel.locator(".qa-doc-meta").inner_text()
    body = panel.locator(".qa-doc-body").inner_text()
    assert "導 讀" in body and len(body) > 1500  # the full document, not just the passage
    assert panel.locator(".qa-doc-body .qa-dropped").count() >= 1  # cleaned-away spans, greyed
    # picking another retrieved passage shows it instead
    page.locator("#qa-pick input").click()
    page.get_by_role("option").nth(1).click()
    page.wait_for_function("() => document.querySelector('#qa-doc .qa-doc-heading').textContent.startsWith('#2')")
    assert panel.locator(".qa-doc-body .qa-cited").count() >= 1
    # the copy button copies the reply as text, not as HTML
    reply.hover()
    page.locator("#qa-chat button[aria-label='Copy message']").last.click()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "躍升至2021年的第4名" in copied and "<" not in copied and "&#" not in copied


def test_off_topic_question_gets_no_answer_and_history_stays(real_app, page):
    page.goto(real_app)
    # the example questions sit in the empty chat; clicking one asks it
    page.locator("#qa-chat").get_by_text("相城區的區塊鏈企業有多少家？").click()
    page.wait_for_function("() => document.querySelectorAll('#qa-chat .qa-reply').length == 1", timeout=ANSWER_TIMEOUT_MS)
    first = page.locator("#qa-chat .qa-reply").first
    reply = ask(page, "红烧肉怎么做？", enter=True)
    assert "qa-abstain" in reply.get_attribute("class")
    text = reply.inner_text()
    assert "文件中沒有找到答案" in text and "Possibly related" in text
    assert reply.locator("mark").count() == 0
    # the earlier answer is still in the chat, above the new reply
    assert page.locator("#qa-chat .qa-reply").count() == 2
    assert "相城" in first.inner_text()
    # empty question: a friendly message, no error
    page.locator("#qa-input textarea").fill("   ")
    page.locator("#qa-ask").click()
    page.wait_for_function("() => document.querySelectorAll('#qa-chat .qa-reply').length > 2")
    assert "請輸入" in page.locator("#qa-chat .qa-reply").last.inner_text()
    # new chat clears the history and the panel
    page.locator("#qa-clear").click()
    page.wait_for_function("() => document.querySelectorAll('#qa-chat .qa-reply').length == 0")
    assert page.locator("#qa-doc .qa-doc-empty").count() == 1


def test_document_payloads_render_inert(xss_app, page):
    page.goto(xss_app)
    reply = ask(page, XSS_QUESTION)
    page.locator("#qa-doc .qa-doc-body").wait_for()
    # the reply quotes and cites the payload document, payloads and all, as text
    reply_text = reply.text_content()  # textContent: includes the collapsed sources list
    for payload in ("<img src=x onerror=alert(1)>", "<script>window.__pwned=1</script>", "[link](javascript:alert(2))"):
        assert payload in reply_text, payload
    assert "xss-<i>payload.txt" in reply.locator(".qa-cite").first.inner_text()
    # the document panel shows it in full (open it from the dropdown if another passage is on top)
    if "payload" not in page.locator("#qa-doc .qa-doc-meta").inner_text():
        page.locator("#qa-pick input").click()
        page.get_by_role("option", name="payload").first.click()
        page.wait_for_function("() => document.querySelector('#qa-doc .qa-doc-meta').textContent.includes('payload')")
    page.wait_for_timeout(500)  # give any injected handler a chance to fire
    body = page.locator("#qa-doc .qa-doc-body").inner_text()
    for payload in (
        "<img src=x onerror=alert(1)>",
        "<script>window.__pwned=1</script>",
        "[link](javascript:alert(2))",
        "![img](x)",
        '<a href="javascript:alert(3)">點我</a>',
    ):
        assert payload in body, payload
    assert "xss-<i>payload.txt" in page.locator("#qa-doc .qa-doc-meta").inner_text()
    assert "<img src=x onerror=alert(1)>" in page.locator("#qa-doc .qa-doc-title").inner_text()
    assert_inert(page)
    # a question that is itself a payload is shown as text too
    question = "<img src=x onerror=alert(1)> [x](javascript:alert(4)) ![y](x) 河馬"
    ask(page, question)
    assert question in page.locator("#qa-chat").inner_text()
    page.wait_for_timeout(300)
    assert_inert(page)


def assert_inert(page):
    """No element, link or script from document text made it into the DOM, and nothing ran."""
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.querySelectorAll('a[href^=\"javascript\"]').length") == 0
    assert page.evaluate("document.querySelectorAll('#qa-chat script, #qa-doc script').length") == 0
    assert page.evaluate("document.querySelectorAll('#qa-chat img, #qa-doc img').length") == 0
    assert page.dialogs == []


UPLOAD_TIMEOUT_MS = 180_000  # reading, embedding and swapping in the new index on a busy 2-core box
PDF_QUESTION = "三峡工程位于哪里？"  # answered only on page 2 of the uploaded PDF


@pytest.fixture(scope="module")
def upload_app(tmp_path_factory):
    """The app on a tmp copy of the repository's corpus (hash encoder), ready to take uploads."""
    import shutil

    from qa import Pipeline

    base = tmp_path_factory.mktemp("upload")
    corpus = shutil.copytree(ROOT / "corpus", base / "corpus")
    demo, url = _serve(Pipeline.open(corpus, base / "index", encoder="hash"))
    yield url, corpus
    demo.close()


def test_upload_answer_and_remove_a_document(upload_app, page, tmp_path):
    from test_readers import PAGE_HTML, chromium_pdf, make_docx

    url, corpus = upload_app
    pdf = chromium_pdf(PAGE_HTML, tmp_path / "長江概況.pdf")
    docx = make_docx(tmp_path / "report.docx")
    page.goto(url)
    assert "qa-abstain" in ask(page, PDF_QUESTION).get_attribute("class")  # not in the corpus yet
    page.locator("#qa-docs").get_by_text("文件 / Documents").first.click()
    assert "MiB each" in page.locator("#qa-docs .qa-limits").inner_text()  # the limits are stated
    page.locator("#qa-upload input[type=file]").set_input_files([str(pdf), str(docx)])
    status = page.locator("#qa-status")
    page.wait_for_function("() => (document.querySelector('#qa-status') || {}).textContent?.includes('indexed')",
                           timeout=UPLOAD_TIMEOUT_MS)
    assert "✓ 長江概況.pdf: added" in status.inner_text() and "✓ report.docx: added" in status.inner_text()
    table = page.locator("#qa-docs-table").inner_text()
    assert "長江概況.pdf" in table and "report.docx" in table
    assert (corpus / "長江概況.pdf").exists() and (corpus / "report.docx").exists()
    reply = ask(page, PDF_QUESTION)
    assert "qa-answer" in reply.get_attribute("class")
    assert "湖北省宜昌市" in reply.locator("blockquote.qa-passage mark").inner_text()
    cite = reply.locator(".qa-cite").first.inner_text()
    assert "長江概況.pdf" in cite and "p. 2" in cite  # the quote's page
    page.locator("#qa-page img").wait_for()  # the cited page itself, the quote marked on it
    assert page.locator("#qa-page .qa-doc-meta").inner_text().startswith("原頁 page 2 · 長江概況.pdf")
    assert page.evaluate("document.querySelector('#qa-page img').naturalWidth") == 900
    # remove the PDF: the same question is declined
    page.locator("#qa-remove-pick input").click()
    page.get_by_role("option", name="長江概況.pdf").click()
    page.locator("#qa-remove").click()
    page.wait_for_function("() => document.querySelector('#qa-status').textContent.includes('removed')",
                           timeout=UPLOAD_TIMEOUT_MS)
    assert "長江概況.pdf" not in page.locator("#qa-docs-table").inner_text()
    assert not (corpus / "長江概況.pdf").exists()
    assert "qa-abstain" in ask(page, PDF_QUESTION).get_attribute("class")
    page.wait_for_function("() => !document.querySelector('#qa-page img')")  # the corpus's .txt files have no pages
    assert_inert(page)


# A question, then a pronoun follow-up the hash encoder answers right (evals/conversations c004). The
# follow-up of issue 21, "它在2019年排名第几？", is declined by both encoders (left to retrieval).
FIRST_QUESTION = "哪份白皮书评估了中国城市区块链发展水平？"
FOLLOW_UP = "它显示苏州2021年排名第几？"


@pytest.fixture(scope="module")
def feedback_app(tmp_path_factory):
    """The app on the real corpus with the hash encoder (quick to build), and its index folder."""
    from qa import Pipeline

    index = tmp_path_factory.mktemp("feedback") / "index"
    demo, url = _serve(Pipeline.open(ROOT / "corpus", index, encoder="hash"))
    yield url, index
    demo.close()


def test_rate_a_follow_up_down_with_a_reason_download_the_chat_then_export_and_eval(feedback_app, page, tmp_path):
    import json

    from conftest import run_qa

    from qa import feedback, store

    url, index = feedback_app
    page.goto(url)
    ask(page, FIRST_QUESTION)
    reply = ask(page, FOLLOW_UP)
    assert "qa-answer" in reply.get_attribute("class")
    assert "躍升至2021年的第4名" in reply.locator("blockquote.qa-passage mark").inner_text()
    assert "理解为 / Understood as:" in reply.locator(".qa-understood").inner_text()
    note = page.locator("#qa-feedback-note")
    # 👍 on the first answer
    page.locator("#qa-chat button[aria-label='Like']").first.click()
    page.wait_for_function("() => document.querySelector('#qa-feedback-note').textContent.includes('Recorded 👍')")
    # 👎 on the follow-up asks for a reason; the reason is recorded with it
    assert not page.locator("#qa-reason").is_visible()
    page.locator("#qa-chat button[aria-label='Dislike']").nth(1).click()
    page.locator("#qa-reason").get_by_text("Should have declined").click()
    page.wait_for_function("() => document.querySelector('#qa-feedback-note').textContent.includes('Reason recorded')")
    assert "Should have declined" in note.inner_text() and not page.locator("#qa-reason").is_visible()
    records = feedback.read(store.feedback_path(index)).records
    assert [(r["question"], r["history"], r["verdict"], r["reason"]) for r in records] == [
        (FIRST_QUESTION, [], "up", None), (FOLLOW_UP, [FIRST_QUESTION], "down", None),
        (FOLLOW_UP, [FIRST_QUESTION], "down", "should_have_declined")]
    assert "第4名" in records[-1]["answer"]["quote"] and records[-1]["understood_as"]
    assert records[-1]["index_version"].startswith("build-") and records[-1]["passages"]
    # the chat downloads as Markdown with the quote and its citation
    with page.expect_download() as download:
        page.locator("#qa-export").click()
    md = open(download.value.path(), encoding="utf-8").read()
    assert f"## 2. {FOLLOW_UP}" in md and "Understood as:" in md and "第4名" in md
    assert "`suzhou-blockchain-pilot-zone.zh-Hant.txt`, ¶ " in md and "characters " in md
    # the ratings become an eval file that qa eval scores
    out = tmp_path / "feedback.questions.jsonl"
    res = run_qa("feedback", "export", out, "--index", index)
    assert res.returncode == 0 and "wrote 2 questions (1 answerable, 1 unanswerable)" in res.stdout, res.stderr
    res = run_qa("eval", out, "--index", index, "--json")
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)["modes"]["hybrid"]
    assert (m["n"], m["hit@1"], m["followup_n"], m["answered_wrongly"]) == (2, 1.0, 1, 1)
    assert_inert(page)
