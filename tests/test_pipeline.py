"""Pipeline: asking questions (hash encoder on the tiny corpus), input validation, and the real model
end to end through the CLI (slow)."""

from __future__ import annotations

import json

import pytest
from conftest import OFF_TOPIC, REAL_CORPUS, REAL_QUESTION, TINY_DOCS, run_qa, write_corpus

from qa import Answer, Pipeline
from qa.errors import QuestionError
from qa.pipeline import MAX_QUESTION_CHARS, clean_question

SUZHOU = "suzhou-blockchain.zh-Hans.txt"
WHEN_QUESTION = "苏州什么时候获批创建区块链发展先导区？"


def _check_hits(answer: Answer, k: int) -> None:
    assert 1 <= len(answer.hits) <= k
    assert [h.rank for h in answer.hits] == list(range(1, len(answer.hits) + 1))
    scores = [h.score for h in answer.hits]
    assert scores == sorted(scores, reverse=True)
    for h in answer.hits:
        p = h.passage
        assert p.text == TINY_DOCS[p.doc_id][p.start : p.end]  # the original file text, not a copy


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_ask_returns_passages_that_are_slices_of_the_source_files(tiny_built, mode):
    _, _, p = tiny_built
    a = p.ask(WHEN_QUESTION, k=3, mode=mode)
    assert a.mode == mode and a.question == WHEN_QUESTION
    _check_hits(a, 3)
    assert a.hits[0].passage.doc_id == SUZHOU


def test_quote_is_the_dated_sentence_of_the_top_passage(tiny_built):
    _, _, p = tiny_built
    a = p.ask(WHEN_QUESTION)
    assert not a.abstained
    top = a.best.passage
    assert a.quote.text in top.text
    assert top.text[a.quote.start : a.quote.end] == a.quote.text
    # By hand: that sentence shares the most question bigrams (苏州, 创建, 区块, 块链, 先导, 导区, ...)
    # and holds a date, which a 'when' question favours.
    assert a.quote.text == "2021年11月，工信部正式复函，支持苏州市创建区块链发展先导区。"
    js = a.to_json()
    assert js["answer"]["quote"] == a.quote.text
    assert TINY_DOCS[SUZHOU][js["answer"]["start"] : js["answer"]["end"]] == a.quote.text


def test_traditional_question_finds_the_simplified_document_and_vice_versa(tiny_built):
    _, _, p = tiny_built
    assert p.ask("蘇州什麼時候獲批創建區塊鏈發展先導區？").hits[0].passage.doc_id == SUZHOU
    assert p.ask("台北捷运什么时候正式通车？").hits[0].passage.doc_id == "taipei-metro.zh-Hant.txt"


@pytest.mark.parametrize("mode", ["fast", "", "HYBRID", None])
def test_bad_mode_raises_question_error_naming_it(tiny_built, mode):
    _, _, p = tiny_built
    with pytest.raises(QuestionError) as exc:
        p.ask(WHEN_QUESTION, mode=mode)
    assert repr(mode) in str(exc.value) and "hybrid" in str(exc.value)


@pytest.mark.parametrize("k", [0, -1, 2.5, "3", None])
def test_bad_k_raises_question_error_naming_it(tiny_built, k):
    _, _, p = tiny_built
    with pytest.raises(QuestionError) as exc:
        p.ask(WHEN_QUESTION, k=k)
    assert f"k={k!r}" in str(exc.value)


@pytest.mark.parametrize("question", ["", "   ", "\n\t\r", "\x00\x01\x02", "\u200b\u200e"])
def test_empty_question_raises_question_error(tiny_built, question):
    _, _, p = tiny_built
    with pytest.raises(QuestionError, match="empty"):
        p.ask(question)


def test_non_text_question_raises_question_error(tiny_built):
    _, _, p = tiny_built
    with pytest.raises(QuestionError, match="int"):
        p.ask(42)


def test_k_larger_than_the_index_returns_every_passage_once(tiny_built):
    _, _, p = tiny_built
    a = p.ask(WHEN_QUESTION, k=1000, mode="dense")
    assert len(a.hits) == len(p.passages)
    assert len({h.passage.id for h in a.hits}) == len(p.passages)


def test_very_long_question_is_truncated_with_a_notice(tiny_built):
    _, _, p = tiny_built
    question = "区块链发展先导区" * 12500  # 100,000 characters
    assert len(question) == 100_000
    a = p.ask(question)
    assert len(a.question) == MAX_QUESTION_CHARS == 200
    assert a.question == question[:200]
    assert a.notice and "200" in a.notice and "100000" in a.notice
    assert a.to_json()["notice"] == a.notice
    _check_hits(a, 5)


@pytest.mark.parametrize(
    "question",
    [
        "\x00区块链\x07发展\x1b[31m先导区\x7f？",  # control characters
        "区块链🚀🔥发展先导区？👍🏽👨‍👩‍👧",  # emoji incl. skin tone and ZWJ family
        "🚀🚀🚀",  # emoji only
        "\u202eمتى تم إنشاء منطقة البلوكشين\u202c؟ מתי הוקם האזור?",  # RTL (Arabic, Hebrew) with bidi override
        "<script>alert('区块链')</script><b>先导区</b>&amp;&#x4e2d;",  # HTML
        "区\u200b块\u200b链\u200d先导区\ufeff",  # zero-width characters and a BOM
        "'; DROP TABLE passages; --",
        "ＡＢＣ１２３？",  # full-width
        "?" * 50,
    ],
)


def test_odd_questions_get_an_answer_without_exception(tiny_built, question):
    _, _, p = tiny_built
    a = p.ask(question)
    assert isinstance(a, Answer)
    json.dumps(a.to_json(), ensure_ascii=False).encode("utf-8")  # serialisable as UTF-8
    assert all(ord(c) >= 32 for c in a.question)  # control characters were removed
    if a.quote is not None:
        assert a.quote.text in a.best.passage.text


def test_question_with_lone_surrogates_gets_an_answer(tiny_built):
    _, _, p = tiny_built
    a = p.ask("\udcff\udcfe区块链发展先导区")
    assert isinstance(a, Answer)
    json.dumps(a.to_json(), ensure_ascii=False).encode("utf-8")


def test_clean_question_collapses_whitespace_and_strips_controls():
    assert clean_question("  苏州\t\n区块链\x00先导区  ") == ("苏州 区块链 先导区", None)


def test_unknown_document_lookup_raises_question_error(tiny_built):
    _, _, p = tiny_built
    assert p.document(SUZHOU).text == TINY_DOCS[SUZHOU]
    with pytest.raises(QuestionError, match="nope.txt"):
        p.document("nope.txt")


# ---- the real model on the real corpus (slow) ----------------------------------------------------

PASSAGE_KEYS = {"rank", "passage_id", "doc_id", "title", "text", "start", "end", "score"}


def _ask_json(index, question):
    build_before = json.loads((index / "manifest.json").read_text(encoding="utf-8"))["build"]
    res = run_qa("ask", question, "--json", "--index", index)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, res.stdout  # exactly one JSON object, nothing else
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    # the index was used as it was, not rebuilt (default --corpus is ./corpus, the same files)
    assert json.loads((index / "manifest.json").read_text(encoding="utf-8"))["build"] == build_before
    return obj


def _check_schema(obj, question):
    assert set(obj) - {"notice"} == {"question", "answer", "passages"}
    assert obj["question"] == question
    assert isinstance(obj["passages"], list) and 1 <= len(obj["passages"]) <= 5
    for n, p in enumerate(obj["passages"], 1):
        assert PASSAGE_KEYS <= set(p)
        assert p["rank"] == n
        assert isinstance(p["start"], int) and isinstance(p["end"], int) and p["start"] < p["end"]
        assert isinstance(p["score"], float | int) and isinstance(p["title"], str)
        original = (REAL_CORPUS / p["doc_id"]).read_text(encoding="utf-8")
        assert p["text"] == original[p["start"] : p["end"]]
        assert p["passage_id"].startswith(p["doc_id"] + "#")


@pytest.mark.slow
def test_cli_ask_json_with_the_real_model(real_index):
    index, _ = real_index
    obj = _ask_json(index, REAL_QUESTION)
    _check_schema(obj, REAL_QUESTION)
    answer = obj["answer"]
    assert answer is not None, "the corpus answers this question"
    top = obj["passages"][0]
    assert answer["quote"] in top["text"]
    assert answer["passage_id"] == top["passage_id"] and answer["doc_id"] == top["doc_id"]
    original = (REAL_CORPUS / answer["doc_id"]).read_text(encoding="utf-8")
    assert original[answer["start"] : answer["end"]] == answer["quote"]
    # Both articles report the same reply of 工信部: the Traditional one as "近日,工信部正式復函支持
    # 蘇州創建區塊鏈發展先導區", the Simplified one dated "2021年11月,工信部正式复函". The quote must be
    # that reply, and the dated passage must be among the five returned.
    assert "工信部" in answer["quote"] and ("復函" in answer["quote"] or "复函" in answer["quote"])
    assert any("2021年11月" in p["text"] and "工信部" in p["text"] for p in obj["passages"][:5])


@pytest.mark.slow
def test_cli_ask_off_topic_with_the_real_model_abstains(real_index):
    index, _ = real_index
    obj = _ask_json(index, OFF_TOPIC)
    _check_schema(obj, OFF_TOPIC)
    assert obj["answer"] is None


@pytest.mark.slow
def test_traditional_question_with_the_real_model(real_index):
    _, p = real_index
    a = p.ask("蘇州是什麼時候獲批創建區塊鏈發展先導區的？", k=5)
    assert not a.abstained
    assert "工信部" in a.quote.text
    assert any("2021年11月" in h.passage.text and "工信部" in h.passage.text for h in a.hits)


@pytest.mark.slow
def test_articles_question_set_with_the_real_model_meets_the_core_targets(real_index):
    """The bar on evals/articles.questions.jsonl: hybrid hit@1 >= 0.90, hit@5 >= 0.98,
    at most 2 answerable questions wrongly abstained; abstention must not fall below today's 6 of 10."""
    from qa.evaluate import evaluate, load_questions, summarize

    _, p = real_index
    questions = load_questions(REAL_CORPUS.parent / "evals" / "articles.questions.jsonl").questions
    s = summarize(evaluate(p, questions, ["hybrid"])["hybrid"], 10)
    assert s["n_answerable"] >= 40 and s["n_unanswerable"] >= 6
    assert s["hit@1"] >= 0.90 and s["hit@5"] >= 0.98, s
    assert s["wrongly_abstained"] <= 2 and s["abstained_unanswerable"] >= 6, s


@pytest.mark.slow
def test_the_example_at_the_top_of_the_pipeline_module_is_true(tmp_path, monkeypatch):
    import doctest
    import shutil

    import qa.pipeline

    shutil.copytree(REAL_CORPUS, tmp_path / "corpus")
    monkeypatch.chdir(tmp_path)  # the example builds corpus/ into index/ of the working folder
    result = doctest.testmod(qa.pipeline, verbose=False)
    assert result.attempted >= 4 and result.failed == 0


def test_a_build_takes_the_vectors_of_another_index_of_the_same_encoder(tmp_path):
    # e.g. a folder index moved into Milvus (build --reuse-vectors INDEX): nothing is embedded again
    corpus = write_corpus(tmp_path / "corpus")
    Pipeline.build(corpus, tmp_path / "a", "hash")
    p, rep = Pipeline.build(corpus, tmp_path / "b", "hash", reuse=tmp_path / "a")
    assert rep.passages > 0 and (rep.embedded, rep.sentences_embedded, rep.reused) == (0, 0, rep.passages)
    assert p.ask("相城区有多少家区块链企业？").hits[0].passage.id == Pipeline.load(tmp_path / "a").ask(
        "相城区有多少家区块链企业？").hits[0].passage.id
    _, other = Pipeline.build(corpus, tmp_path / "c", "hash:32", reuse=tmp_path / "a")  # another encoder's: never
    assert other.embedded == other.passages
