"""Kinds: the kind of fact a question asks for (when, how many, who, where), and whether a text states
a fact of that kind.

A "when" question answered with "近日" (recently), a "how many" without a number, a "who" without a
name reads as a wrong answer even when the passage is right. The quote prefers a sentence that states
the asked-for kind beyond what the question itself says (``QuoteConfig``), the rerank moves up a
passage whose best sentence states a date a "when" question asks for (``Reranker.kind_first``), and
``qa eval`` reports, per kind, how often the quote states one when the gold answer is of that kind.

Patterns read folded text (Simplified, lower case, ``qa.text.fold``). Names and places are found by
jieba's part-of-speech tags (nr*, nt; ns) or a name's middle dot, an organisation's or place's suffix.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .config import KINDS
from .text import fold, tagged_words

# What a question asks for, first match wins ("几月" is "when", not "how many").
_ASKS = (
    # (not "哪个朝代" / "哪一时期": the answer is an era's name, "宋朝", "江户时代", which no date pattern reads)
    ("when", re.compile(r"何时|什么时[候间]|哪一?年|哪[几些]年|哪[一个]?个?(?:年代|世纪)|几[月号点]|"
                        r"哪个?月|哪一?天|何年|\bwhen\b|\bwhat (?:year|time|date)\b|\bwhich year\b")),
    ("count", re.compile(r"多少|几[个家项条年次位名所种座只件人天岁倍层部届场支首种台辆万亿千百十]|第几|排名|比例|"
                         r"百分之|占比|\bhow (?:many|much|long|old)\b|\bpercent|\brank")),
    ("who", re.compile(r"谁|哪[位个]人|哪些人|哪[家个所](?:公司|企业|机构|部门|组织|单位|银行|大学|学校|医院)|"
                       r"\bwho(?:m|se)?\b|\bwhich (?:company|firm|ministry|department|organi[sz]ation|agency|university)")),
    # "在哪" alone asks where, but "在哪些领域" / "在哪一场战争" ask which (a place noun after it still asks
    # where) and "区别在哪" asks what
    ("where", re.compile(r"哪里|哪儿|(?<!区别|差别|不同|差异|原因|关键|问题|意义|特点|好处|优势)在哪(?![些个一场次])|何处|何地|什么地方|"
                         r"哪[些个座一]?个?(?:国家|城市|省|地区|地方|地点|国|市|县|区|州|洲|大洋)|\bwhere\b|"
                         r"\bwhich (?:city|country|province|district|place|region)")),
)

_NUMERAL = "零〇一二两三四五六七八九十百千万亿"
# A date or time: a number (or numerals) with 年/月/日/号/时/点/世纪/年代, a four-digit year, 周一…
_DATE = re.compile(rf"\d{{1,4}}\s*(?:年|月|日|号(?![线楼院])|时|点|世纪|年代)|[{_NUMERAL}]+\s*(?:年|月|日|世纪|年代)|"
                   r"(?<!\d)(?:1[0-9]|20)\d\d(?!\d)|[周星期礼拜][一二三四五六日天]|[春夏秋冬]季|[上中下]旬")
# A number with its measure word (digits may stand alone; numerals need one: not the 一 of 统一).
_UNIT = r"(?:[个家项条年月日次位名所种座只件人天岁倍层部届场支首台辆公米克吨元%％成]|平方|英[尺里寸])"
_COUNT = re.compile(rf"\d[\d,.]*\s*{_UNIT}?|[{_NUMERAL}几半]+\s*{_UNIT}")
_DAY_OR_YEAR = re.compile(r"(?:1\d|20)\d\d年?|\d{1,2}[月日号]")
_ORG = re.compile(r"[\u4e00-\u9fff]{2,}(?:公司|集团|大学|学院|研究院|研究所|委员会|政府|协会|组织|银行|医院|"
                  r"办公室|部|局|厅|署|院|会|社|队|党|军)")
_PLACE = re.compile(r"[\u4e00-\u9fff]{1,8}(?:省|市|县|区|镇|乡|村|州|岛|山|河|江|湖|海|洋|洲|街|路|港|湾|"
                    r"盆地|平原|高原|半岛|地区|国)")
_NAME_DOT = re.compile(r"[\u4e00-\u9fffA-Za-z]+·[\u4e00-\u9fffA-Za-z]+")


@lru_cache(maxsize=1024)
def asked_kind(question: str) -> str | None:
    """The kind of fact ``question`` asks for (one of ``KINDS``), or None; cached, as the rerank, the
    quote (for each sentence) and the evaluation ask it of the same question."""
    folded = fold(question)
    return next((kind for kind, pattern in _ASKS if pattern.search(folded)), None)


@lru_cache(maxsize=16384)
def expressions(kind: str, text: str) -> frozenset[str]:
    """The expressions of ``kind`` that ``text`` states (folded): dates, numbers, names or places."""
    folded = fold(text)
    if kind == "when":
        return frozenset(m.group().replace(" ", "") for m in _DATE.finditer(folded))
    if kind == "count":  # a year or a day of the month is a date, not a count
        found = (m.group().replace(" ", "") for m in _COUNT.finditer(folded))
        return frozenset(e for e in found if not _DAY_OR_YEAR.fullmatch(e))
    if kind == "who":
        found = {w for w, f in tagged_words(folded) if f in ("nr", "nrfg", "nrt", "nt") and len(w) > 1}
        return frozenset(found | {m.group() for m in _NAME_DOT.finditer(folded)}
                         | {m.group() for m in _ORG.finditer(folded)})
    if kind == "where":
        found = {w for w, f in tagged_words(folded) if f == "ns" and len(w) > 1}
        return frozenset(found | {m.group() for m in _PLACE.finditer(folded)})
    raise ValueError(f"kind={kind!r}; expected one of {', '.join(KINDS)}")


def states(kind: str, text: str, question: str = "") -> bool:
    """Does ``text`` state a fact of ``kind`` that ``question`` does not already say?

    "苏州区块链发展水平在2021年排名第几?" names 2021年 itself: a sentence holding only that year
    states no new number; one with "第4名" does.
    """
    own = expressions(kind, question) if question else frozenset()
    return any(not any(e in o or o in e for o in own) for e in expressions(kind, text))
