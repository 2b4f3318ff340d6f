"""Web pages: the main content of an .html/.htm saved from a browser (BeautifulSoup, MIT).

Scripts, styles, forms and the page's ``<nav>``, ``<header>``, ``<footer>`` and ``<aside>`` are
dropped; the ``<article>`` or ``<main>`` element is read when there is one, else the body. Each block
element (paragraph, list item, heading, table row) becomes one line; ``<h1>``-``<h6>`` are headings.
The title (``og:title``, the first ``<h1>`` or ``<title>``) and publication date (``article:published_time``, ``<time>``)
are kept.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import CorpusError
from .extract import Extracted, TextBuilder

DROP = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg", "iframe",
        "button", "select", "canvas", "object", "embed")
BLOCKS = {"p", "div", "section", "article", "main", "li", "ul", "ol", "dl", "dt", "dd", "blockquote", "pre",
          "table", "tr", "br", "hr", "figure", "figcaption", "h1", "h2", "h3", "h4", "h5", "h6", "address"}
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
CELL = "\x1f"  # between the cells of a table row; a tab in the stored text
MIN_CHARS = 40  # fewer characters of text than this beside scripts: a page that is mostly script
_DATE_RE = re.compile(r"((?:19|20)\d\d)[-/.年](\d{1,2})[-/.月](\d{1,2})")


def _walk(node: Any, b: TextBuilder, line: list[str], label: list[str | None]) -> None:
    """Add the text under ``node`` to ``b``, one line per block element; cells of a row joined by tabs."""
    from bs4 import NavigableString, Tag
    from bs4.element import Comment, Doctype, ProcessingInstruction

    def flush() -> None:
        b.line("".join(line).replace("\t", " ").replace(CELL, "\t"), label[0])
        line.clear()
        label[0] = None

    for child in node.children:
        if isinstance(child, (Comment, Doctype, ProcessingInstruction)):
            continue
        if isinstance(child, NavigableString):
            line.append(str(child))
        elif isinstance(child, Tag):
            name = child.name.lower()
            if name in ("td", "th"):
                if line and "".join(line).strip():
                    line.append(CELL)
                _walk(child, b, line, label)
            elif name in BLOCKS:
                flush()
                if name in HEADINGS or name == "tr":
                    label[0] = "heading" if name in HEADINGS else "content"
                _walk(child, b, line, label)
                flush()
            else:
                _walk(child, b, line, label)


def _date(soup: Any) -> str | None:
    """The page's publication date as YYYY-MM-DD, from its meta tags or first ``<time>``."""
    candidates = [m.get("content") for m in soup.find_all("meta")
                  if (m.get("property") or m.get("name") or "").lower() in
                  ("article:published_time", "date", "pubdate", "publishdate", "dc.date", "og:published_time")]
    t = soup.find("time")
    if t is not None:
        candidates.append(t.get("datetime") or t.get_text())
    for c in candidates:
        m = _DATE_RE.search(c or "")
        if m:
            return f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3)):02d}"
    return None


def read_html(data: bytes) -> Extracted:
    """The main content of a saved web page (see the module docstring); ``CorpusError`` when none is left."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    og = soup.find("meta", attrs={"property": "og:title"})
    h1 = soup.find("h1")
    title = (og.get("content") if og else None) or (h1.get_text() if h1 else "") or (soup.title.get_text() if soup.title else "")
    date = _date(soup)
    script = sum(len(t.get_text()) for t in soup.find_all("script"))
    for tag in soup.find_all(DROP):
        tag.decompose()
    mains = soup.find_all(["article", "main"])
    root = max(mains, key=lambda t: len(t.get_text())) if mains else soup.body or soup
    b = TextBuilder()
    try:
        _walk(root, b, [], [None])
    except RecursionError:
        raise CorpusError("web page nested too deeply to read (elements inside elements hundreds of levels "
                          "deep); save it from the browser as text or PDF") from None
    chars = b.length
    if not b.parts or (script and chars < MIN_CHARS):
        raise CorpusError(f"web page with {chars} characters of text beside {script} of script: nothing to read "
                          f"(a page its scripts draw); save it from the browser as text or PDF")
    return b.build("html", title=" ".join(title.split()) or None, date=date)
