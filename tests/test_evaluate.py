"""Evaluate: metrics on hand-built outcomes, hit rules, question files, and `python -m qa eval`."""

from __future__ import annotations

import json
import os
from itertools import product

import pytest
from conftest import TINY_DOCS, run_qa

from qa import Pipeline
from qa.errors import QuestionError
from qa.evaluate import EvalQuestion, Outcome, evaluate, is_hit, load_questions, paragraph_span, summarize
from qa.schema import Document, Passage


def _q(qid: str, answerable: bool = True) -> EvalQuestion:
    return EvalQuestion(qid, f"问题{qid}", ("答案",) if answerable else ())


def _o(q: EvalQuestion, first_hit=None, abstained=False, quote_ok=None, latency=10.0, found=0.0) -> Outcome:
    return Outcome(q, "hybrid", first_hit, abstained, quote_ok, latency, found, 0.5, 1.0)


def test_summarize_ranks_hand_worked():
    outcomes = [
        _o(_q("a"), first_hit=1, quote_ok=True, latency=10, found=1.0),
        _o(_q("b"), first_hit=3, latency=20, found=1.0),
        _o(_q("c"), first_hit=None, latency=30, found=0.0),
        _o(_q("d"), first_hit=2, quote_ok=False, latency=40, found=0.5),
    ]
    s = summarize(outcomes, k=10)
    assert (s["n"], s["n_answerable"], s["n_unanswerable"]) == (4, 4, 0)
    assert s["hit@1"] == pytest.approx(1 / 4)  # only a (rank 1)
    assert s["hit@3"] == pytest.approx(3 / 4)  # a (1), b (3), d (2)
    assert s["hit@5"] == pytest.approx(3 / 4)  # c never hits
    assert s["hit@10"] == pytest.approx(3 / 4)
    assert s["mrr@10"] == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)  # = 0.4583
    assert s["mrr@10"] == pytest.approx(0.4583, abs=1e-4)
    assert s["recall@10"] == pytest.approx((1 + 1 + 0 + 0.5) / 4)  # mean answers_found = 0.625
    assert s["quote_accuracy"] == pytest.approx(1 / 2)  # judged only where quote_ok is set: True, False
    assert s["latency_ms_mean"] == pytest.approx(25.0)  # (10+20+30+40)/4
    assert s["latency_ms_p95"] == pytest.approx(38.5)  # linear: 30 + 0.85 * (40 - 30)
    assert s["abstain_recall"] is None  # no unanswerable questions
    assert (s["abstained_unanswerable"], s["wrongly_abstained"]) == (0, 0)
    assert s["answered_wrongly"] == 3  # b, c, d: nothing abstained, only a has its answer at rank 1


def test_summarize_only_reports_hit_at_k_up_to_k_and_mrr_is_cut_at_10():
    s = summarize([_o(_q("a"), first_hit=12), _o(_q("b"), first_hit=1)], k=20)
    assert {"hit@1", "hit@3", "hit@5", "hit@10"} <= set(s)
    assert s["hit@10"] == pytest.approx(1 / 2)  # rank 12 is outside 10
    assert s["mrr@10"] == pytest.approx((0 + 1) / 2)  # rank 12 counts 0 in MRR@10
    s3 = summarize([_o(_q("a"), first_hit=2)], k=3)
    assert "hit@5" not in s3 and "hit@10" not in s3 and "recall@3" in s3
    assert s3["hit@1"] == 0.0 and s3["hit@3"] == 1.0


def test_summarize_abstention_hand_worked():
    u1, u2 = _q("u1", answerable=False), _q("u2", answerable=False)
    a1, a2, a3 = _q("a1"), _q("a2"), _q("a3")
    outcomes = [
        _o(u1, abstained=True),  # right to abstain
        _o(u2, abstained=False),  # should have abstained
        _o(a1, first_hit=1, abstained=True),  # wrongly abstained
        _o(a2, first_hit=2),
        _o(a3, first_hit=None),
    ]
    s = summarize(outcomes, k=5)
    assert (s["n"], s["n_answerable"], s["n_unanswerable"]) == (5, 3, 2)
    # abstained on {u1, a1}; of those, u1 is unanswerable -> precision 1/2
    assert s["abstain_precision"] == pytest.approx(1 / 2)
    # unanswerable {u1, u2}; abstained on u1 -> recall 1/2
    assert s["abstain_recall"] == pytest.approx(1 / 2)
    assert s["abstained_unanswerable"] == 1 and s["wrongly_abstained"] == 1
    # answered with a passage that does not answer: u2 (nothing does), a2 (rank 2), a3 (no hit)
    assert s["answered_wrongly"] == 3
    # ranks count answerable questions only: a1 (1), a2 (2), a3 (none)
    assert s["hit@1"] == pytest.approx(1 / 3)
    assert s["hit@3"] == pytest.approx(2 / 3)
    assert s["mrr@10"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    assert "hit@10" not in s


def test_summarize_all_unanswerable_all_abstained():
    s = summarize([_o(_q("u1", False), abstained=True), _o(_q("u2", False), abstained=True)], k=5)
    assert s["abstain_precision"] == 1.0 and s["abstain_recall"] == 1.0
    assert s["n_answerable"] == 0 and s["hit@1"] == 0.0 and s["quote_accuracy"] is None


# Three paragraphs split on blank lines; offsets worked out by hand:
#   "第一段，答案是苏州。" 10 chars at [0, 10); "\n\n"; "第二段也提到苏州。" 9 chars at [12, 21);
#   "\n\n"; "第三段。" 4 chars at [23, 27).
PARA_TEXT = "第一段，答案是苏州。\n\n第二段也提到苏州。\n\n第三段。"
DOC = Document(doc_id="d", text=PARA_TEXT, title="t")
DOCS = {"d": DOC}


def _p(start: int, end: int, doc_id: str = "d") -> Passage:
    return Passage(id=f"{doc_id}#{start}", doc_id=doc_id, text=PARA_TEXT[start:end], start=start, end=end, title="t", paragraph=1)


def test_paragraph_span_hand_worked():
    assert paragraph_span(PARA_TEXT, 0) == (0, 10)
    assert paragraph_span(PARA_TEXT, 1) == (12, 21)
    assert paragraph_span(PARA_TEXT, 2) == (23, 27)
    assert paragraph_span(PARA_TEXT, 3) is None
    for i in range(3):
        s, e = paragraph_span(PARA_TEXT, i)
        assert PARA_TEXT[s:e] == PARA_TEXT.split("\n\n")[i]


@pytest.mark.parametrize(
    "question,passage,expected",
    [
        (EvalQuestion("1", "q", ("苏州",)), _p(0, 10), True),  # no gold doc: answer string inside
        (EvalQuestion("2", "q", ("蘇州",)), _p(12, 21), True),  # answers are folded to Simplified
        (EvalQuestion("3", "q", ("上海",)), _p(0, 10), False),  # answer not in passage
        (EvalQuestion("4", "q", ()), _p(0, 10), False),  # unanswerable never hits
        (EvalQuestion("5", "q", ("苏州",), doc_id="other"), _p(0, 10), False),  # wrong document
        (EvalQuestion("6", "q", ("苏州",), doc_id="d"), _p(0, 10), True),
        (EvalQuestion("7", "q", ("苏州",), doc_id="d", paragraph_index=1), _p(0, 10), False),  # other paragraph
        (EvalQuestion("8", "q", ("苏州",), doc_id="d", paragraph_index=1), _p(12, 21), True),  # gold paragraph
        (EvalQuestion("9", "q", ("苏州",), doc_id="d", paragraph_index=1), _p(0, 21), True),  # overlaps it
        (EvalQuestion("10", "q", ("苏州",), doc_id="d", paragraph_index=0), _p(12, 27), False),  # touches no char of it
        (EvalQuestion("11", "q", ("第三段",), doc_id="d", paragraph_index=2), _p(23, 27), True),
    ],
)
def test_is_hit(question, passage, expected):
    assert is_hit(question, passage, DOCS) is expected


def test_load_questions_reports_bad_lines_and_keeps_good_ones(tmp_path):
    lines = [
        {"id": "q1", "question": "苏州什么时候获批？", "answers": ["2021年11月"], "doc_id": "d", "paragraph_index": 2},  # 1
        "{bad json",  # 2
        "",  # 3 blank: ignored
        {"id": "q4", "answers": ["x"]},  # 4 no question
        {"id": "q5", "question": "   ", "answers": []},  # 5 empty question
        {"id": "q6", "question": "有答案吗", "answers": "not a list"},  # 6 answers not a list
        {"id": "q1", "question": "重复的编号", "answers": []},  # 7 duplicate id
        {"question": "没有编号的无答案问题", "answers": []},  # 8 ok: id from the line number
        {"id": "q9", "question": "空答案", "answers": [""]},  # 9 empty answer string
        {"id": "q10", "question": "段落号", "answers": ["甲"], "paragraph_index": "x"},  # 10 bad paragraph_index
        [1, 2, 3],  # 11 not an object
    ]
    text = "\n".join(x if isinstance(x, str) else json.dumps(x, ensure_ascii=False) for x in lines) + "\n"
    path = tmp_path / "questions.jsonl"
    path.write_text(text, encoding="utf-8-sig")  # with a BOM
    qs = load_questions(path)
    assert [q.id for q in qs.questions] == ["q1", "line8"]
    q1 = qs.questions[0]
    assert (q1.question, q1.answers, q1.doc_id, q1.paragraph_index) == ("苏州什么时候获批？", ("2021年11月",), "d", 2)
    assert qs.questions[1].answers == ()
    assert [n for n, _ in qs.errors] == [2, 4, 5, 6, 7, 9, 10, 11]
    assert "duplicate" in dict(qs.errors)[7]


def test_load_questions_missing_file(tmp_path):
    with pytest.raises(QuestionError, match="does not exist"):
        load_questions(tmp_path / "nope.jsonl")


def test_load_questions_skips_a_line_that_is_not_utf8_by_its_number(tmp_path):
    path = tmp_path / "questions.jsonl"
    row = lambda qid: json.dumps({"id": qid, "question": "苏州什么时候获批？", "answers": ["2021年11月"]}, ensure_ascii=False)  # noqa: E731
    path.write_bytes(row("q1").encode("utf-8") + b"\n"
                     + row("q2").encode("gb18030") + b"\n"  # saved in the wrong encoding
                     + row("q3").encode("utf-8") + b"\n")
    qs = load_questions(path)
    assert [q.id for q in qs.questions] == ["q1", "q3"]
    # '{"id": "q2", "question": "' is 26 bytes; GB18030 苏 starts with 0xCB, which UTF-8 cannot follow with 0xD5
    assert qs.errors == [(2, "ValueError: not UTF-8 at byte 27 of the line (invalid continuation byte); save the file as UTF-8")]


@pytest.mark.parametrize("question,shown", [(42, "a number: 42"), (None, "null: null"), (["苏州"], 'a list: ["苏州"]')])
def test_load_questions_says_a_question_must_be_text(tmp_path, question, shown):
    path = tmp_path / "questions.jsonl"
    path.write_text(json.dumps({"id": "q1", "question": question, "answers": []}, ensure_ascii=False) + "\n"
                    + json.dumps({"id": "q2", "question": "   ", "answers": []}) + "\n", encoding="utf-8")
    qs = load_questions(path)
    assert qs.questions == []
    assert qs.errors == [(1, f"TypeError: question must be text (a JSON string), not {shown}"), (2, "ValueError: empty question")]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_load_questions_refuses_a_fifo_without_opening_it(tmp_path):
    path = tmp_path / "questions.jsonl"
    os.mkfifo(path)
    with pytest.raises(QuestionError) as exc:
        load_questions(path)
    assert str(exc.value) == f"question file {str(path)!r} is a named pipe (FIFO), not a file; pass a .jsonl file of questions"


def test_evaluate_rejects_unknown_modes(tiny_built):
    _, _, p = tiny_built
    with pytest.raises(QuestionError, match="'fast'"):
        evaluate(p, [_q("a")], modes=["fast"])


def test_evaluate_warms_the_pipeline_before_timing_the_first_question(tiny_built, monkeypatch):
    _, _, p = tiny_built
    calls = []
    monkeypatch.setattr(p, "warm", lambda: calls.append("warm"))
    monkeypatch.setattr(p, "ask", lambda *a, **k: calls.append("ask") or Pipeline.ask(p, *a, **k))
    evaluate(p, [_q("a"), _q("b")], modes=["bm25"])
    assert calls == ["warm", "ask", "ask"]


def test_evaluate_in_process_scores_the_tiny_corpus(tiny_built, tmp_path):
    _, _, p = tiny_built
    questions = [
        EvalQuestion("s1", "苏州什么时候获批创建区块链发展先导区？", ("2021年11月",), "suzhou-blockchain.zh-Hans.txt"),
        EvalQuestion("u1", "红烧肉怎么做？", ()),
    ]
    results = evaluate(p, questions, modes=["bm25"], k=5, details=tmp_path / "d.jsonl")
    [s1, u1] = results["bm25"]
    # By hand: only the first Suzhou passage holds "2021年11月", and it shares the most question words.
    assert s1.first_hit == 1 and not s1.abstained and s1.quote_ok is True and s1.answers_found == 1.0
    assert u1.abstained and u1.first_hit is None
    assert len((tmp_path / "d.jsonl").read_text(encoding="utf-8").splitlines()) == 2


@pytest.fixture
def eval_questions(tmp_path):
    rows = [
        {"id": "s1", "question": "苏州什么时候获批创建区块链发展先导区？", "answers": ["2021年11月"],
         "doc_id": "suzhou-blockchain.zh-Hans.txt"},
        {"id": "t1", "question": "臺北捷運哪一年正式通車？", "answers": ["1996年"]},
        {"id": "u1", "question": "红烧肉怎么做？", "answers": []},
    ]
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path, rows


def test_cli_eval_all_modes_json_and_details(tiny_built, eval_questions, tmp_path):
    corpus, index, _ = tiny_built
    qpath, rows = eval_questions
    details = tmp_path / "details.jsonl"
    res = run_qa("eval", qpath, "--corpus", corpus, "--index", index, "--encoder", "hash",
                 "--mode", "all", "--json", "--details", details, "--k", "5")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    [line] = res.stdout.strip().splitlines()
    out = json.loads(line)
    assert set(out) == {"modes"}
    assert set(out["modes"]) == {"hybrid", "dense", "bm25"}
    for mode, s in out["modes"].items():
        assert (s["n"], s["n_answerable"], s["n_unanswerable"]) == (3, 2, 1), mode
        assert {"hit@1", "hit@3", "hit@5", "mrr@10", "recall@5", "abstain_precision", "abstain_recall"} <= set(s)
        assert "hit@10" not in s
        assert 0.0 <= s["hit@1"] <= s["hit@3"] <= s["hit@5"] <= 1.0
    records = [json.loads(x) for x in details.read_text(encoding="utf-8").splitlines()]
    assert len(records) == len(rows) * 3
    assert {(r["id"], r["mode"]) for r in records} == set(product([r["id"] for r in rows], ["hybrid", "dense", "bm25"]))
    for r in records:
        for p in r["passages"]:
            assert p["text"] == TINY_DOCS[p["doc_id"]][p["start"] : p["end"]]
    by = {(r["id"], r["mode"]): r for r in records}
    assert by[("s1", "bm25")]["first_hit"] == 1  # see test_evaluate_in_process_scores_the_tiny_corpus
    assert all(by[("u1", m)]["abstained"] and by[("u1", m)]["quote"] is None for m in ("hybrid", "dense", "bm25"))
    # the summary agrees with the details lines
    bm25_hits = [by[(q, "bm25")]["first_hit"] for q in ("s1", "t1")]
    assert out["modes"]["bm25"]["hit@1"] == pytest.approx(sum(h == 1 for h in bm25_hits) / 2)
