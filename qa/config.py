"""Config: every setting of the pipeline, a named field with its default, in one place.

``Config`` groups one frozen dataclass per stage; pass it to ``Pipeline`` (``Pipeline.open(...,
config=Config(...))``) or give the CLI a JSON file with ``--config FILE`` holding the fields to change
(``{"rerank": {"depth": 30}, "abstain": {"threshold": 0.5}}``). What each value does is said here;
why it has that value, the grid it was chosen from and what it measured are in ``docs/tuning.md``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The kinds of fact a question can ask for (``qa.kinds``), named by ``kinds_first`` and ``kind_neighbours``.
KINDS = ("when", "count", "who", "where")


def _check_kinds(setting: str, names: tuple[str, ...]) -> None:
    """A typo in a kind's name would silently turn its step off: refuse it instead."""
    unknown = [n for n in names if n not in KINDS]
    if unknown:
        raise ValueError(f"{setting}={list(names)!r}: unknown kind {unknown[0]!r}; expected names from {', '.join(KINDS)}")


@dataclass(frozen=True)
class SplitConfig:
    """Passage size in characters: packed up to ``max_chars``; consecutive passages share their
    boundary sentence when it is at most ``overlap_chars`` long; a block shorter than ``min_chars``
    is joined with the next when they touch. An index records the split it was built with."""

    max_chars: int = 800
    overlap_chars: int = 80
    min_chars: int = 40

    def __post_init__(self) -> None:
        if not isinstance(self.max_chars, int) or self.max_chars < 20:
            raise ValueError(f"max_chars={self.max_chars!r}; expected a whole number of characters, 20 or more")
        if self.overlap_chars < 0 or self.min_chars < 0:
            raise ValueError("overlap_chars and min_chars must be 0 or more")

    def to_json(self) -> dict:
        """Plain dict for the manifest."""
        return dataclasses.asdict(self)

    @classmethod
    def of_index(cls, manifest: dict) -> SplitConfig:
        """The split an index was built with (the default for one whose manifest predates recording it)."""
        return cls(**manifest["split"]) if "split" in manifest else cls()


@dataclass(frozen=True)
class ReadConfig:
    """How a build reads PDF, Word and web-page files (``qa.readers``).

    ``ocr``: a PDF page with no text layer (fewer than ``ocr_min_chars`` letters and digits) or a
    garbage one (under ``min_text_share`` of its characters letters, digits, punctuation or spaces)
    is read by OCR (RapidOCR, about 9 s a page on two cores), rendered at ``ocr_dpi``; with ``ocr``
    off such a page is left out with a warning. ``max_pages``: pages read of one PDF. A page holding
    an image of more than ``max_image_pixels`` pixels is not rendered (left out, with a warning); a
    .docx whose parts unzip to more than ``max_unzipped_bytes`` is skipped (a zip bomb). ``timeout_s``:
    a file (other than .txt / .md) is read in a child process, stopped and skipped when it works this
    long without finishing the file or a page of OCR (a PDF that hangs PDFium); 0 reads in process,
    without a limit.
    """

    ocr: bool = True
    ocr_dpi: int = 150
    ocr_min_chars: int = 10
    min_text_share: float = 0.6
    max_pages: int = 2000
    max_image_pixels: int = 40_000_000
    max_unzipped_bytes: int = 256 * 1024 * 1024
    timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if not self.timeout_s >= 0:
            raise ValueError(f"read.timeout_s={self.timeout_s!r}; expected 0 (no limit) or more seconds")

    def text_settings(self) -> dict:
        """The settings that decide the text a file gives (all but ``timeout_s``): an index records
        them, and a rebuild with other values reads every file again."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "timeout_s"}


@dataclass(frozen=True)
class UploadConfig:
    """What one upload in the app may hold (``qa.uploads``): at most ``files`` files of at most
    ``file_bytes`` bytes each and ``total_bytes`` in all; the server refuses the rest, each with why.
    (A corpus file over 64 MiB is skipped by the build whatever these say.)"""

    files: int = 20
    file_bytes: int = 64 * 1024 * 1024
    total_bytes: int = 128 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("files", "file_bytes", "total_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"upload.{name}={getattr(self, name)!r}; expected 1 or more")


@dataclass(frozen=True)
class IndexConfig:
    """How a build indexes passages.

    ``embed_title``: a passage is embedded with its document's title and heading in front.
    ``bm25_k1`` / ``bm25_b``: BM25's term-frequency saturation and length normalisation (an index
    keeps the values it was built with). ``exact_limit``: up to this many passages the dense index
    is exact (flat); past it, IVF with the smallest nprobe whose recall@10 on probe queries reaches
    ``ivf_target_recall``. ``char_grams_limit``: up to this many passages the index stores the
    corpus's characters and character pairs (abstention's "does the corpus use this word"); past it,
    a word is present when BM25's vocabulary holds its tokens.
    """

    embed_title: bool = True
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    exact_limit: int = 25_000
    ivf_target_recall: float = 0.97
    char_grams_limit: int = 200_000


@dataclass(frozen=True)
class QuestionConfig:
    """What one question may cost. ``max_chars``: a longer question is cut, with a notice.
    ``hmm_chars``: jieba guesses words outside its dictionary with an HMM (about 1 ms a rare
    character) in this many leading characters only; the rest is cut with the dictionary alone."""

    max_chars: int = 200
    hmm_chars: int = 80


@dataclass(frozen=True)
class SearchConfig:
    """Retrieval. ``candidates``: passages each retriever brings to the fusion. ``dense_weight``: the
    dense share w of ``hybrid = w * minmax(cosine) + (1 - w) * minmax(bm25)``. ``translations_per_word``:
    CC-CEDICT renderings of one English word that an English question over Chinese text searches for."""

    dense_weight: float = 0.5
    candidates: int = 50
    translations_per_word: int = 4


@dataclass(frozen=True)
class MatchConfig:
    """How much of a question one sentence says (the rerank, abstention and the quote read it): its
    share of the question's content-word bigrams, plus ``phrase_weight`` times its share of the
    question's character trigrams (phrases in order). A one-character word counts ``char_weight``; a
    gram of the document's title counts ``title_gram_weight`` (a question names its document's subject,
    the answering sentence often leaves it out)."""

    phrase_weight: float = 0.5
    char_weight: float = 0.25
    title_gram_weight: float = 0.2


@dataclass(frozen=True)
class RerankConfig:
    """Hybrid rerank of the top ``depth`` fused passages: ``+ sentence_weight`` x the best sentence's
    match (``MatchConfig``), ``+ sentence_dense_weight`` x the best sentence cosine (min-max over the
    ``depth``), ``+ number_weight`` x the share of the question's numbers the passage states; every
    candidate of a document the question names by its title (2 to ``max_title_chars`` characters)
    gets ``+ title_weight``. For a question asking for a kind of fact in ``kinds_first`` (``qa.kinds``),
    a passage among the first ``kind_depth`` whose best sentence states one, and says at least
    ``kind_min_support`` of the question and at most ``kind_support_gap`` less than the first's, goes
    before a first whose best
    sentence does not (``Reranker.kind_first``; ``kind_depth`` 1 turns it off)."""

    depth: int = 20
    sentence_weight: float = 1.0
    sentence_dense_weight: float = 0.3
    number_weight: float = 0.2
    title_weight: float = 0.2
    max_title_chars: int = 30
    kind_depth: int = 3
    kind_min_support: float = 0.5
    kind_support_gap: float = 0.15
    kinds_first: tuple[str, ...] = ("when",)

    def __post_init__(self) -> None:
        _check_kinds("rerank.kinds_first", self.kinds_first)


@dataclass(frozen=True)
class AbstainConfig:
    """When to say the documents do not answer (``qa.abstain``): confidence under ``threshold``.

    The words' confidence is ``min(1 - missing share, coverage_scale * coverage)``, coverage read from
    the best of the top ``coverage_depth`` BM25 passages (0 when a name or the asked attribute is
    missing). With the best passage's best sentence at hand, the confidence is a logistic of the words'
    confidence, that sentence's support (how much of the question it says) and the lower of its support
    and ``gap_scale`` x its gap (how much closer it means the question than the top passages' best
    sentences do; a gap needs ``min_gap_passages`` of them): ``words_weight``, ``support_weight`` and
    ``said_weight`` with ``bias``. ``scripts/fit_abstain.py`` fits them on one corpus's questions and
    judges them on the other's; ``bias`` puts ``threshold`` where 2.5% of the fitted corpus's answerable
    questions fall below it.
    """

    threshold: float = 0.6
    coverage_depth: int = 10
    coverage_scale: float = 1.5
    min_gap_passages: int = 10
    gap_scale: float = 5.0
    words_weight: float = 4.47
    support_weight: float = 5.42
    said_weight: float = 11.48
    bias: float = -6.52


@dataclass(frozen=True)
class QuoteConfig:
    """Which sentence of the best passage is quoted (``qa.quote``). A sentence's score is its match
    (``MatchConfig``) plus ``when_bonus`` / ``count_bonus`` / ``who_bonus`` / ``where_bonus`` when it
    states a date / number / name / place that a question of that kind asks for (``qa.kinds``), plus
    ``char_share_weight`` x its share of the characters of
    the question's content words beyond the title's (a paraphrase keeps one). A neighbour holding
    ``neighbour_gain`` of the question that the best sentence lacks is quoted with it; a sentence of
    fewer than ``min_quote_chars`` letters and digits is quoted with the next; with ``pronoun_lead``, one
    whose subject is a pronoun ("它…", "其…") with the one before, which names what it stands for.
    ``sentence_dense_weight`` x the sentence's cosine to the question (its stored vector) is added too:
    meaning separates sentences that share as many of the question's words. When the runner-up is next to
    the best sentence and scores within ``pair_margin`` of it, the two are quoted together: the scores
    cannot tell which one answers. For a question asking for a kind of fact in ``kind_neighbours``, a quote
    that states none takes in the sentence before it (else after it) that does ("同年…" after the sentence
    with the year), unless the quote repeats the question's own expression of that kind. A question gram
    that k of the passage's sentences hold counts ``k ** -rarity`` (``qa.rerank.sentence_overlaps``): the
    subject recurs, the detail asked about does not."""

    char_share_weight: float = 0.6
    when_bonus: float = 0.35
    count_bonus: float = 0.25
    who_bonus: float = 0.2
    where_bonus: float = 0.2
    neighbour_gain: float = 0.05
    min_quote_chars: int = 12
    pronoun_lead: bool = True
    sentence_dense_weight: float = 2.0
    pair_margin: float = 0.4
    kind_neighbours: tuple[str, ...] = ("when", "count", "who", "where")
    rarity: float = 1.5

    def __post_init__(self) -> None:
        _check_kinds("quote.kind_neighbours", self.kind_neighbours)


@dataclass(frozen=True)
class ConversationConfig:
    """How a follow-up is read with the questions before it (``qa.conversation``). ``max_turns``: earlier
    questions read, the latest first; ``topic_words``: the previous question's words, years and numbers
    put in front of a follow-up that leaves them out; ``margin``: how much more confident abstention must
    be of the contextual reading than of the question as it stands, when the question shows no cue of
    leaning on earlier turns (with a cue, as confident is enough)."""

    max_turns: int = 3
    topic_words: int = 6
    margin: float = 0.0


_SECTIONS = {"read": ReadConfig, "upload": UploadConfig, "split": SplitConfig, "index": IndexConfig,
             "question": QuestionConfig, "search": SearchConfig, "match": MatchConfig, "rerank": RerankConfig, "abstain": AbstainConfig, "quote": QuoteConfig,
             "conversation": ConversationConfig}


@dataclass(frozen=True)
class Config:
    """Every setting, one section a stage. ``read``, ``split`` and ``index`` apply when an index is
    built; the rest when questions are asked."""

    read: ReadConfig = field(default_factory=ReadConfig)
    upload: UploadConfig = field(default_factory=UploadConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    question: QuestionConfig = field(default_factory=QuestionConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    match: MatchConfig = field(default_factory=MatchConfig)
    rerank: RerankConfig = field(default_factory=RerankConfig)
    abstain: AbstainConfig = field(default_factory=AbstainConfig)
    quote: QuoteConfig = field(default_factory=QuoteConfig)
    conversation: ConversationConfig = field(default_factory=ConversationConfig)

    def to_json(self) -> dict[str, dict[str, Any]]:
        """Every section as a plain dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: object, source: str = "config") -> Config:
        """A config from ``{"section": {"field": value}}``; unnamed fields keep their defaults.
        An unknown section or field, or a value of the wrong type, is a ``ValueError`` naming it."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object of sections ({', '.join(_SECTIONS)})")
        sections = {}
        for name, values in data.items():
            kind = _SECTIONS.get(name)
            if kind is None:
                raise ValueError(f"{source}: unknown section {name!r}; expected one of {', '.join(_SECTIONS)}")
            if not isinstance(values, dict):
                raise ValueError(f"{source}: section {name!r} must be an object of fields")
            fields = {f.name: f for f in dataclasses.fields(kind)}
            for key, value in values.items():
                if key not in fields:
                    raise ValueError(f"{source}: {name}.{key} is not a setting; expected one of {', '.join(fields)}")
                default = getattr(kind(), key)
                if isinstance(default, tuple):  # JSON has lists: ["when", "count"]
                    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                        raise ValueError(f"{source}: {name}.{key}={value!r}; expected a list of names")
                    continue
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                ok = (isinstance(value, bool) if isinstance(default, bool)
                      else (number and (isinstance(value, int) or isinstance(default, float))))
                if not ok:
                    raise ValueError(f"{source}: {name}.{key}={value!r}; expected a {type(default).__name__}")
            try:
                sections[name] = kind(**{k: _as_default_type(getattr(kind(), k), v) for k, v in values.items()})
            except ValueError as exc:  # a field's own check (__post_init__): say which file set it
                raise ValueError(f"{source}: {exc}") from None
        return cls(**sections)

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """A config from a JSON file (see ``from_json``)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"cannot read config file {str(path)!r} ({exc.strerror})") from None
        except ValueError as exc:
            raise ValueError(f"config file {str(path)!r} is not valid JSON ({exc})") from None
        return cls.from_json(data, str(path))


def _as_default_type(default: object, value: object) -> object:
    """A JSON value as its field holds it: a float field's whole number as a float, a list as a tuple."""
    if isinstance(default, float):
        return float(value)
    if isinstance(default, tuple):
        return tuple(value)
    return value
