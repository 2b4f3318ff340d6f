"""Search: dense index vs brute force, IVF recall, score fusion, BM25 script folding."""

from __future__ import annotations

import numpy as np
import pytest

from qa.config import IndexConfig
from qa.errors import IndexCorruptError
from qa.search import (
    DenseIndex,
    LexicalIndex,
    SentenceVectors,
    TitleIndex,
    fuse_scores,
    minmax,
    top_k,
)


def _unit(rng, n, dim):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def vectors():
    rng = np.random.default_rng(1234)
    return _unit(rng, 500, 32), _unit(rng, 20, 32)


@pytest.mark.parametrize("k", [1, 5, 10, 50, 500, 800])
def test_dense_index_equals_numpy_brute_force(vectors, k):
    data, queries = vectors
    index = DenseIndex.build(data)
    assert index.size == 500
    for q in queries:
        ids, scores = index.search(q, k)
        sims = data @ q
        expected = np.argsort(-sims, kind="stable")[: min(k, len(data))]
        assert ids.dtype == np.int64
        np.testing.assert_array_equal(ids, expected)
        np.testing.assert_allclose(scores, sims[expected], rtol=1e-5, atol=1e-5)


def test_dense_index_k_zero_and_vectors_round_trip(vectors, tmp_path):
    data, queries = vectors
    index = DenseIndex.build(data)
    ids, scores = index.search(queries[0], 0)
    assert len(ids) == 0 and len(scores) == 0
    np.testing.assert_array_equal(index.vectors(), data)
    np.testing.assert_array_equal(index.vectors(np.array([7, 3])), data[[7, 3]])
    index.save(tmp_path / "dense.faiss")
    again = DenseIndex.load(tmp_path / "dense.faiss")
    np.testing.assert_array_equal(again.vectors(), data)


def test_ivf_recall_at_10_against_brute_force(tmp_path):
    # 4000 random unit vectors in 64-d: random high-dimensional data has no cluster structure,
    # the hard case for IVF, so the build's nprobe calibration has to probe many lists to reach
    # its 0.97 target on probe queries; these (unrelated) queries must still get recall@10 >= 0.95.
    rng = np.random.default_rng(7)
    data, queries = _unit(rng, 4000, 64), _unit(rng, 100, 64)
    index = DenseIndex.build(data, exact_limit=0)
    assert type(index.index).__name__ == "IndexIVFFlat"
    assert 1 <= index.index.nprobe <= index.index.nlist

    def recall(ix):
        out = []
        for q in queries:
            ids, scores = ix.search(q, 10)
            truth = np.argsort(-(data @ q))[:10]
            out.append(len(set(ids.tolist()) & set(truth.tolist())) / 10)
            np.testing.assert_allclose(scores, data[ids] @ q, rtol=1e-5, atol=1e-5)  # scores are real cosines
        return np.mean(out)

    assert recall(index) >= 0.95
    np.testing.assert_allclose(index.vectors(np.array([0, 3999])), data[[0, 3999]])
    index.save(tmp_path / "dense.faiss")
    again = DenseIndex.load(tmp_path / "dense.faiss")
    assert again.index.nprobe == index.index.nprobe  # the calibrated nprobe is saved with the index
    np.testing.assert_allclose(again.vectors(np.array([5, 17])), data[[5, 17]])  # direct map survives save
    np.testing.assert_array_equal(again.vectors(), data)  # all of them too (incremental builds reuse them)
    assert recall(again) == recall(index)


def test_lexical_index_tokenises_repeated_texts_once_with_the_same_scores():
    # Same scores as indexing every text's own token list with bm25s directly.
    import bm25s

    from qa.text import tokenize

    texts = PASSAGES + PASSAGES[:2]
    repeated = LexicalIndex.build(texts)
    plain = bm25s.BM25(k1=IndexConfig().bm25_k1, b=IndexConfig().bm25_b, method="lucene")
    plain.index([tokenize(t) or [""] for t in texts], show_progress=False)
    for q in ("區塊鏈 捷運", "苏州区块链", "python"):
        np.testing.assert_allclose(repeated.scores(q), LexicalIndex(plain).scores(q), rtol=1e-6)
    s = repeated.scores("苏州区块链")
    assert s[0] == s[4] > 0 and s[1] == s[5] == 0


def test_fuse_scores_hand_worked():
    ids = np.array([10, 20, 30])
    dense = np.array([0.9, 0.7, 0.5], dtype=np.float32)
    lexical = np.array([0.0, 4.0, 2.0], dtype=np.float32)
    # min-max: dense -> [(0.9-0.5)/0.4, (0.7-0.5)/0.4, 0] = [1, 0.5, 0]
    #          lexical -> [0/4, 4/4, 2/4] = [0, 1, 0.5]
    # w = 0.4: fused = 0.4*[1, 0.5, 0] + 0.6*[0, 1, 0.5] = [0.4, 0.8, 0.3]
    out_ids, fused = fuse_scores(ids, dense, lexical, 0.4)
    np.testing.assert_array_equal(out_ids, [20, 10, 30])
    np.testing.assert_allclose(fused, [0.8, 0.4, 0.3], atol=1e-6)
    # w = 1: dense order only -> [10 (1.0), 20 (0.5), 30 (0.0)]
    out_ids, fused = fuse_scores(ids, dense, lexical, 1.0)
    np.testing.assert_array_equal(out_ids, [10, 20, 30])
    np.testing.assert_allclose(fused, [1.0, 0.5, 0.0], atol=1e-6)
    # w = 0: lexical order only -> [20 (1.0), 30 (0.5), 10 (0.0)]
    out_ids, fused = fuse_scores(ids, dense, lexical, 0.0)
    np.testing.assert_array_equal(out_ids, [20, 30, 10])


def test_fuse_scores_ties_break_by_id():
    # dense_n = [1, 0], lexical_n = [0, 1]; w = 0.5 -> both 0.5: smaller id first.
    out_ids, fused = fuse_scores(np.array([5, 3]), np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.5)
    np.testing.assert_array_equal(out_ids, [3, 5])
    np.testing.assert_allclose(fused, [0.5, 0.5])


@pytest.mark.parametrize(
    "x,expected",
    [
        ([], []),
        ([1.0, 3.0], [0.0, 1.0]),
        ([1.0, 2.0, 3.0], [0.0, 0.5, 1.0]),
        ([-2.0, 0.0, 2.0], [0.0, 0.5, 1.0]),
        ([2.0, 2.0, 2.0], [1.0, 1.0, 1.0]),  # constant positive: every candidate gets full marks
        ([0.0, 0.0], [0.0, 0.0]),  # constant zero (e.g. no BM25 match at all): no signal
        ([-1.0, -1.0], [0.0, 0.0]),  # constant negative cosines: no signal
        ([0.7], [1.0]),  # a single positive candidate
    ],
)
def test_minmax(x, expected):
    out = minmax(np.array(x, dtype=np.float32))
    assert out.dtype == np.float32 and out.shape == (len(x),)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert np.all(np.isfinite(out))


def test_top_k_keeps_positive_scores_best_first_ties_by_row():
    scores = np.array([0.0, 2.0, 2.0, 1.0, -1.0, 3.0], dtype=np.float32)
    ids, s = top_k(scores, 3)
    np.testing.assert_array_equal(ids, [5, 1, 2])
    np.testing.assert_array_equal(s, [3.0, 2.0, 2.0])
    ids, _ = top_k(scores, 100)
    np.testing.assert_array_equal(ids, [5, 1, 2, 3])  # zero and negative rows are not results
    assert len(top_k(scores, 0)[0]) == 0


PASSAGES = [
    "苏州获批创建区块链发展先导区，工信部正式复函支持。",  # Simplified
    "臺北捷運於1996年正式通車，第一條路線是文湖線。",  # Traditional
    "龙井茶产于浙江杭州西湖一带，是中国十大名茶之一。",  # Simplified
    "Python was created by Guido van Rossum.",
]


@pytest.fixture(scope="module")
def lexical():
    return LexicalIndex.build(PASSAGES)


@pytest.mark.parametrize(
    "question,expected_row",
    [
        ("區塊鏈發展先導區", 0),  # Traditional query -> Simplified passage
        ("蘇州獲批創建", 0),
        ("台北捷运什么时候通车", 1),  # Simplified query -> Traditional passage
        ("文湖线", 1),
        ("龍井茶產於哪裡", 2),
        ("GUIDO ROSSUM", 3),  # case folding
        ("ｐｙｔｈｏｎ", 3),  # full-width folding
    ],
)
def test_lexical_index_folds_scripts_width_and_case(lexical, question, expected_row):
    ids, scores = top_k(lexical.scores(question), 4)
    assert len(ids) >= 1 and ids[0] == expected_row, (ids, scores)
    assert scores[0] > 0


def test_lexical_index_no_match_gives_no_results(lexical):
    ids, scores = top_k(lexical.scores("红烧肉"), 4)
    assert len(ids) == 0
    assert np.all(lexical.scores("红烧肉") == 0)


def test_lexical_index_save_load_round_trip(lexical, tmp_path):
    lexical.save(tmp_path / "bm25")
    again = LexicalIndex.load(tmp_path / "bm25")
    for q in ("區塊鏈", "捷运", "python"):
        np.testing.assert_allclose(again.scores(q), lexical.scores(q))


def test_title_index_names_the_longest_title_the_question_contains():
    titles = TitleIndex([
        ("d1", "前肛鳗"), ("d2", "异齿前肛鳗"), ("d3", "䲟"), ("d4", "短䲟"),
        ("d5", "大曲車站 (秋田縣)"), ("d6", "大曲车站 (青森县)"), ("d7", "苏州" * 20),
    ])
    assert titles.named("前肛鳗生活在水深为多少的水域？") == {"d1"}
    assert titles.named("异齿前肛鳗以什么为食？") == {"d2"}  # not d1 as well: its title sits inside d2's
    assert titles.named("短䲟又叫做什么？") == {"d4"}
    assert titles.named("䲟的背吸盘有多少对鳍瓣？") == set()  # one-character titles are never matched
    # both disambiguated articles share the name; Traditional and Simplified fold together
    assert titles.named("大曲車站的地址是哪里？") == {"d5", "d6"}
    assert titles.named("苏州" * 20 + "是什么？") == set()  # a headline-length title is never matched
    assert TitleIndex([]).named("任何问题") == set()


def test_sentence_vectors_best_is_each_passages_highest_sentence_cosine(tmp_path):
    rng = np.random.default_rng(3)
    v = rng.standard_normal((9, 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    counts = [2, 1, 4, 2]  # passage 2 holds rows 3..6
    sv = SentenceVectors.build(v, counts)
    assert sv.size == 4 and sv.vectors.dtype == np.float16
    q = v[5] + 0.1 * v[0]
    q /= np.linalg.norm(q)
    ids = np.array([2, 0, 3, 1])
    want = [max(v[r] @ q for r in rows) for rows in ([3, 4, 5, 6], [0, 1], [7, 8], [2])]
    np.testing.assert_allclose(sv.best(ids, q), want, atol=2e-3)
    assert sv.best(np.array([], dtype=np.int64), q).shape == (0,)
    sv.save(tmp_path / "sentences")
    back = SentenceVectors.load(tmp_path / "sentences")
    np.testing.assert_array_equal(back.offsets, [0, 2, 3, 7, 9])
    np.testing.assert_allclose(back.of(2), v[3:7], atol=2e-3)
    np.testing.assert_array_equal(back.best(ids, q), sv.best(ids, q))


def test_sentence_vectors_reject_counts_that_do_not_add_up(tmp_path):
    with pytest.raises(ValueError, match="5 sentence vectors for 4 sentences"):
        SentenceVectors.build(np.zeros((5, 4), np.float32), [2, 2])
    SentenceVectors.build(np.zeros((4, 4), np.float32), [2, 2]).save(tmp_path)
    np.save(tmp_path / "offsets.npy", np.array([0, 2, 3]))  # truncated: ends before the last row
    with pytest.raises(ValueError, match="offsets end at 3"):
        SentenceVectors.load(tmp_path)


def test_sentence_rows_read_from_disk_and_a_truncated_file_says_how_to_rebuild(tmp_path):
    folder = tmp_path / "index" / "build-x" / "sentences"
    v = np.arange(24, dtype=np.float32).reshape(6, 4)
    SentenceVectors.build(v, [3, 3]).save(folder)
    loaded = SentenceVectors.load(folder)
    np.testing.assert_array_equal(loaded.of(1), v[3:])  # small integers are exact in float16
    np.testing.assert_array_equal(np.asarray(loaded.vectors, dtype=np.float32), v)
    path = folder / "vectors.npy"
    path.write_bytes(path.read_bytes()[:-8])  # the last row loses its end after loading
    with pytest.raises(IndexCorruptError, match=r"ends early.*python -m qa build --index .*index"):
        loaded.of(1)
