"""Chat: the event handlers of the chat window (``app.py``), around the pipeline a server answers from.

Besides questions: a 👍 or 👎 on a reply is appended to the index's feedback file (``qa.feedback``),
a 👎 then asks for a reason, and the conversation is offered as a Markdown file (``qa.transcript``).

Gradio is imported by ``gradio()`` when the app is built, not at import, so that ``python app.py
--help`` stays quick. The pipeline is read from a ``PipelineHolder`` once per question, so that after
an upload or a removal (``qa.documents_view``) the next question is answered from the new index.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import threading
from types import ModuleType
from typing import TYPE_CHECKING

from . import api, feedback, store, transcript
from . import render as R
from .errors import QAError, QuestionError
from .pipeline import MAX_QUESTION_CHARS, Pipeline, PipelineHolder
from .schema import Mode
from .serve import is_number, short

if TYPE_CHECKING:
    import gradio as gr  # at run time bound by gradio(), when the app is built

log = logging.getLogger("qa.app")

EMPTY_QUESTION = "請輸入一個關於文件內容的問題。\nPlease type a question about the documents."
INTERNAL_ERROR = "出了點問題，請再試一次。\nSomething went wrong answering this question; please try again."
WARM_WAIT_S = 60  # a question waits at most this long for the warm-up before answering anyway
MAX_K = 10  # the most passages a question may ask for (the slider's end)
NOT_RATED = "只有答案可以評分。/ Only answers can be rated."
THANKS = {"up": "已記錄 👍，謝謝！/ Recorded 👍, thank you.", "withdrawn": "已收回評分。/ Rating taken back.",
          "down": "已記錄 👎。哪裡不對？請在下方選擇原因。/ Recorded 👎. What was wrong? Pick a reason below.",
          "reason": "已記錄原因 / Reason recorded: "}


def gradio() -> ModuleType:
    """Import gradio and bind it to this module's ``gr``, where Gradio resolves handler annotations
    such as ``gr.SelectData``."""
    global gr
    import gradio as gr

    return gr


def cap_question(message: object) -> tuple[object, str | None]:
    """``message`` cut to its first ``MAX_QUESTION_CHARS`` characters, and a notice saying so (or
    None). Done before anything else reads the question, so that no work, and not the chat history,
    grows with what was sent; the pipeline cuts again after cleaning, to the same length."""
    if isinstance(message, str) and len(message) > MAX_QUESTION_CHARS:
        notice = f"question truncated to its first {MAX_QUESTION_CHARS} of {len(message)} characters"
        return message[:MAX_QUESTION_CHARS], notice
    return message, None


def parse_k(k: object) -> int:
    """``k`` (a float from the slider) as a whole number of passages from 1 to ``MAX_K``."""
    if not (is_number(k) and k == int(k) and 1 <= k <= MAX_K):
        raise QuestionError(f"k={short(k)}; expected a whole number of passages from 1 to {MAX_K}")
    return int(k)


class ChatHandlers:
    """The event handlers of the chat, around a pipeline (or the ``PipelineHolder`` of one)."""

    def __init__(self, pipeline: Pipeline | PipelineHolder, warmed: threading.Event | None = None):
        gradio()
        self.holder = PipelineHolder.of(pipeline)
        self.warmed = warmed  # set once the background warm-up is done (``app.main``)

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline answering now."""
        return self.holder.pipeline

    def _wait_warm(self) -> None:
        """A question that arrives during the warm-up waits for it instead of loading the same word
        lists and dictionaries beside it, both threads fighting for the interpreter."""
        if self.warmed is not None:
            self.warmed.wait(WARM_WAIT_S)

    def respond(self, message: str | None, history: list | None, mode: str = "hybrid", k: float = 5,
                refs: list | None = None):
        """Answer one question: (history, textbox value, dropdown update, document panel, refs).

        A bad value (a question that is not text, k out of range, an unknown mode) gets a one-line
        error in the chat; calls through the server are checked before they get here
        (``qa.serve.GuardedBlocksMixin.process_api``)."""
        message, notice = cap_question(message)  # first: nothing below may grow with the question
        history = list(history) if isinstance(history, (list, tuple)) else []
        refs = refs if isinstance(refs, list) else []
        if message is not None and not isinstance(message, str):
            return self._error(history, f"question={short(message)}; expected text", refs, notice)
        if not (message or "").strip():
            history.append({"role": "assistant", "content": R.render_message(EMPTY_QUESTION, "info")})
            return history, "", gr.update(), gr.update(), refs
        earlier = R.asked_questions(history)  # the conversation so far: a follow-up is read with it
        history.append({"role": "user", "content": R.render_question(message)})
        pipeline = self.pipeline  # one index for the whole answer, even if an upload swaps it meanwhile
        try:
            n = parse_k(k)
            self._wait_warm()
            answer = pipeline.ask(message, k=n, mode=mode, history=earlier)
        except QAError as exc:
            return self._error(history, str(exc), refs, notice)
        except Exception:  # noqa: BLE001 - never show a traceback in the chat
            log.exception("answering %r failed", message)
            return self._error(history, INTERNAL_ERROR, refs, notice)
        if notice and not answer.notice:
            answer = dataclasses.replace(answer, notice=notice)
        shown = feedback.shown(answer, store.index_version(pipeline.manifest))  # kept in the reply, for its feedback
        history.append({"role": "assistant", "content": R.render_answer(answer, pipeline.document, shown)})
        new_refs = R.source_refs(answer)
        choices = [(R.source_label(r), str(r["rank"])) for r in new_refs]
        if new_refs:
            panel = R.render_ref(new_refs[0], pipeline.document)
            pick = gr.update(choices=choices, value=choices[0][1])
        else:
            panel = R.render_document_placeholder()
            pick = gr.update(choices=[], value=None)
        return history, "", pick, panel, new_refs

    @staticmethod
    def _error(history: list, text: str, refs: list, notice: str | None = None):
        """``respond``'s outputs for a question that got an error: the error (and notice) in the chat."""
        history.append({"role": "assistant", "content": R.render_notice(notice) + R.render_message(text, "error")})
        return history, "", gr.update(), gr.update(), refs

    def respond_example(self, history: list | None, mode: str, k: float, refs: list | None, evt: gr.SelectData):
        """Ask an example question clicked in the empty chat."""
        value = getattr(evt, "value", None)
        text = value.get("text", "") if isinstance(value, dict) else value
        return self.respond(text, history, mode, k, refs)

    def show_source(self, choice: str | None, refs: list | None) -> str:
        """The document panel for the retrieved passage picked in the dropdown."""
        for ref in refs or []:
            if str(ref["rank"]) == str(choice):
                try:
                    return R.render_ref(ref, self.pipeline.document)
                except QAError as exc:
                    return R.render_message(str(exc), "error")
        return R.render_document_placeholder()

    @staticmethod
    def clear():
        """A new chat: empty history, no sources, placeholder panel."""
        return [], "", gr.update(choices=[], value=None), R.render_document_placeholder(), []

    def rate(self, history: list | None, evt: gr.LikeData):
        """A 👍 or 👎 clicked on a reply, or taken back: its record appended to the index's feedback file.
        Returns (the reasons, shown after a 👎; a note; the 👎's record, which a reason completes)."""
        liked = getattr(evt, "liked", None)
        verdict = "up" if liked is True else "down" if liked is False else "withdrawn" if liked in ("", None) else None
        index = getattr(evt, "index", None)
        turn = next((t for t in transcript.turns(history or []) if t.reply == index and t.shown), None)
        if turn is None or verdict is None:
            return gr.update(visible=False, value=None), _note(NOT_RATED), None
        try:
            rec = self._save(turn.question, turn.history, verdict, None, turn.shown, check=True)
        except QAError as exc:
            return gr.update(visible=False, value=None), _note(str(exc), "error"), None
        if verdict == "down":
            return gr.update(visible=True, value=None), _note(THANKS["down"]), rec
        return gr.update(visible=False, value=None), _note(THANKS[verdict]), None

    def give_reason(self, reason: str | None, pending: dict | None):
        """The reason picked after a 👎: the 👎's record again, with the reason (the later record counts).
        Returns (the reasons, hidden again; a note; no pending record)."""
        if not isinstance(pending, dict) or reason not in feedback.REASONS:
            return gr.update(), gr.update(), pending
        try:
            self._save(pending["question"], pending["history"], "down", reason, pending, check=False)
        except QAError as exc:
            return gr.update(visible=False, value=None), _note(str(exc), "error"), None
        return gr.update(visible=False, value=None), _note(f"{THANKS['reason']}{feedback.REASONS[reason]}"), None

    def _save(self, question: str, history, verdict: str, reason: str | None, shown: dict, check: bool) -> dict:
        """Append one record to the feedback file of the index answering now; ``check``: its answer
        against that index's documents."""
        pipeline = self.pipeline
        rec = feedback.record(question, list(history), verdict, reason, shown, pipeline.documents if check else None)
        feedback.append(pipeline.feedback_path, rec)
        return rec

    @staticmethod
    def conversation_file(history: list | None):
        """The download button's update: the chat as a Markdown file (``qa.transcript``), or none yet."""
        try:
            path = transcript.write_markdown(history or [])
        except OSError as exc:
            log.warning("cannot write the conversation file: %s", exc)
            path = None
        return gr.update(value=None if path is None else str(path), interactive=path is not None)

    def ask(self, question: str, history: list[str] | None = None, k: int = 5, mode: Mode = "hybrid") -> dict:
        """Answer ``question`` (read with the earlier questions ``history``, oldest first) from the top
        ``k`` passages found by ``mode``: the JSON of ``POST /api/ask`` and ``python -m qa ask --json``."""
        body = {"question": question, "history": [] if history is None else history, "k": k, "mode": mode}
        self._wait_warm()
        try:
            return api.ask(self.pipeline, body)
        except api.ApiError as exc:
            raise gr.Error(html.escape(str(exc), quote=False), print_exception=False) from None


def _note(text: str, kind: str = "info") -> str:
    """A one-line note under the chat (after a rating), escaped."""
    return f'<div class="qa-feedback-note qa-{kind}">{R.esc(text)}</div>'
