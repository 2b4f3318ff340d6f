"""Word: the paragraphs, headings and tables of a .docx (python-docx, MIT), in document order.

A paragraph styled Title or Heading N is a heading (the first one, the document's title when it has
no other); a table is read row by row, a row's cells joined by tabs. The zip is checked first:
one that unzips to more than ``ReadConfig.max_unzipped_bytes`` is a zip bomb and is not opened.
"""

from __future__ import annotations

import io
import zipfile

from ..config import ReadConfig
from ..errors import CorpusError
from .extract import Extracted, TextBuilder


def check_zip(data: bytes, limit: int) -> None:
    """Raise ``CorpusError`` when ``data`` is not a zip or unzips to more than ``limit`` bytes."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            total = sum(i.file_size for i in z.infolist())
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorpusError(f"not a Word .docx file (not a zip: {exc}); save it as .docx from Word") from None
    if total > limit:
        raise CorpusError(f"unzips to {total >> 20} MB, over read.max_unzipped_bytes ({limit >> 20} MB); "
                          f"a zip bomb or a very large document: save its text as .docx without images")
    if "word/document.xml" not in names:
        raise CorpusError("a zip without word/document.xml, so not a Word .docx; save it as .docx from Word")


def read_docx(data: bytes, config: ReadConfig = ReadConfig()) -> Extracted:
    """The text of a .docx: one paragraph or table row a line; headings and rows labelled."""
    check_zip(data, config.max_unzipped_bytes)
    import docx
    from docx.table import Table

    try:
        doc = docx.Document(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - python-docx raises many kinds for a damaged file
        raise CorpusError(f"not a readable .docx ({type(exc).__name__}: {exc}); re-save it from Word") from None
    b = TextBuilder()
    title = (doc.core_properties.title or "").strip() or None
    for block in doc.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells, seen = [], set()
                for cell in row.cells:  # a merged cell is listed once for each column it spans
                    if id(cell._tc) not in seen:
                        seen.add(id(cell._tc))
                        cells.append(" ".join(cell.text.split()))
                b.line("\t".join(cells), "content")
            continue
        style = (block.style.name if block.style is not None else "") or ""
        heading = style == "Title" or style.startswith("Heading")
        b.line(block.text.replace("\t", " "), "heading" if heading else None)
    return b.build("docx", title=title)  # not core_properties.created: Word's template sets one for every file
