"""Clean: boilerplate of the real articles is dropped, metadata found, mojibake cut out."""

from __future__ import annotations

import pytest
from conftest import HANS_ARTICLE, HANT_ARTICLE, REAL_CORPUS, ROOT, block_texts

from qa.clean import clean_document, is_navigation, parse_meta
from qa.ingest import read_corpus, read_docs_jsonl

GARBLED = "?!兑巹潯穼⒋龠M"  # mojibake of "。《規劃》將促進" in the Traditional article


@pytest.fixture(scope="module")
def real_docs():
    rep = read_corpus(REAL_CORPUS)
    docs = {d.doc_id: d for d in rep.documents}
    assert set(docs) == {HANS_ARTICLE.name, HANT_ARTICLE.name}
    return docs, rep


@pytest.fixture(scope="module")
def hans(real_docs):
    return real_docs[0][HANS_ARTICLE.name]


@pytest.fixture(scope="module")
def hant(real_docs):
    return real_docs[0][HANT_ARTICLE.name]


def test_documents_hold_the_exact_file_text(real_docs):
    docs, _ = real_docs
    for path in (HANS_ARTICLE, HANT_ARTICLE):
        assert docs[path.name].text == path.read_bytes().decode("utf-8")


# Strings copied by hand from the Simplified article's boilerplate lines.
BOILERPLATE = [
    "城市远洋",  # navigation bar
    "舆情智库",  # navigation bar
    "_fororder_",  # repeated image captions
    "供图",  # photo credits
    "相城区融媒体中心",  # photo credits
    "国际在线版权与信息产品内容销售的声明",  # copyright heading
    "由中国国际广播电台主办",  # clause 1
    "未经书面授权",  # clause 2
    "国际在线专稿",  # clause 3
    "应严格在授权范围内使用",  # unnumbered paragraph of the copyright block
    "律师费、诉讼费",  # unnumbered paragraph of the copyright block
    "转载目的在于传递更多信息",  # clause 4
    "30日内进行",  # clause 5
    "编辑:陈小雨",  # byline
]


@pytest.mark.parametrize("marker", BOILERPLATE)
def test_boilerplate_of_the_simplified_article_is_in_no_block(hans, marker):
    assert marker in hans.text  # the marker really is in the file
    assert not any(marker in t for t in block_texts(hans))


# Content sentences that must survive (one from each kept paragraph region).
CONTENT = [
    "近日,国家互联网信息办公室公布了第七批境内区块链信息服务备案编号名单",
    "吃蟹首选阳澄湖,但如何确保买到正宗的阳澄湖大闸蟹呢?",
    "当前,相城区已集聚区块链技术和应用企业160家",
    "2021年11月,工信部正式复函,支持苏州市创建区块链发展先导区。",
    "成立于2017年的同济区块链研究院",
    "当前园内已聚集了长三角金融科技有限公司",
    "步入2022年,相城区将在政策上持续发力",
]


@pytest.mark.parametrize("sentence", CONTENT)
def test_article_content_is_kept(hans, sentence):
    assert any(sentence in t for t in block_texts(hans))


def test_dropped_reasons_of_the_simplified_article(hans):
    reasons = {}
    for s, e, why in hans.dropped:
        reasons.setdefault(why, []).append(hans.text[s:e])
    assert any("城市远洋" in x for x in reasons["navigation"])
    assert len(reasons["caption"]) == 3 and all(x.endswith(("_fororder_12", "_fororder_13", "_fororder_14")) for x in reasons["caption"])
    assert len(reasons["credit"]) == 3 and all("供图" in x for x in reasons["credit"])
    assert any(x.startswith("国际在线版权与信息产品内容销售的声明") for x in reasons["legal"])
    assert any(x.startswith("2022-04-12 17:28:00") for x in reasons["metadata"])


def test_metadata_of_the_simplified_article(hans):
    assert hans.date == "2022-04-12"
    assert hans.source == "中央广电总台国际在线"
    assert hans.title == "苏州市相城区构建数字世界“新基建” 推动区块链产业创新发展"


def test_section_headings_become_block_headings(hans):
    [block] = [b for b in hans.blocks if hans.text[b.start : b.end].startswith("2021年11月")]
    assert block.heading == "推动区块链技术创新发展"


def test_garbled_run_of_the_traditional_article_is_reported_and_cut_out(hant, real_docs):
    spans = [hant.text[s:e] for s, e in hant.garbled]
    assert spans == [GARBLED]
    (gs, ge) = hant.garbled[0]
    for b in hant.blocks:
        assert b.end <= gs or b.start >= ge, "a block overlaps the garbled run"
        assert GARBLED not in hant.text[b.start : b.end]
    texts = block_texts(hant)
    # the text on both sides of the run is kept
    assert any(t.startswith("區塊鏈應用創新作為") for t in texts)
    assert any(t.endswith("也被重點提及") for t in texts)
    # ingest warns about it, naming the document and the run
    _, rep = real_docs
    assert any(doc == HANT_ARTICLE.name and GARBLED in msg for doc, msg in rep.warnings)


def test_traditional_article_metadata_and_labels(hant):
    assert hant.source == "數據觀綜合"
    texts = block_texts(hant)
    assert not any("來源" in t for t in texts)
    assert not any(t.replace(" ", "") == "導讀" for t in texts)
    assert any(t.startswith("蘇州是國內較早探索布局區塊鏈產業的城市之一") for t in texts)


def test_no_garbled_spans_in_the_simplified_article(hans):
    assert hans.garbled == []


@pytest.mark.slow
@pytest.mark.parametrize("path", ["evals/cmrc2018/dev.docs.jsonl", "evals/drcd/dev.docs.jsonl"])
def test_no_false_garbled_reports_on_the_eval_documents(path):
    rep = read_docs_jsonl(ROOT / path)
    assert len(rep.documents) > 300
    flagged = [(d.doc_id, d.text[s:e]) for d in rep.documents for s, e in d.garbled]
    assert flagged == []
    assert not any("garbled" in msg for _, msg in rep.warnings)


def test_rare_place_name_is_not_garbled():
    # Rare characters one at a time are a name, not mojibake (needs 3 different strongly odd chars).
    text = "亳州市位于安徽省西北部，是一座历史文化名城。"
    doc = clean_document("d", text)
    assert doc.garbled == []
    assert block_texts(doc) == [text]


def test_is_navigation_and_parse_meta_units():
    assert is_navigation("首页 | 新闻 | 体育 | 财经 | 科技")
    assert not is_navigation("苏州市相城区不断推动区块链产业发展集聚，获批创建区块链发展先导区。")
    assert parse_meta("2022-04-12 17:28:00来源:中央广电总台国际在线编辑:陈小雨") == ("2022-04-12", "中央广电总台国际在线")
    assert parse_meta("2021年3月5日 來源：數據觀") == ("2021-03-05", "數據觀")
    assert parse_meta("没有元数据的一行") == (None, None)
