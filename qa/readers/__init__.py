"""Readers: the text of PDF, Word and web-page files, each format in its own module."""

from .extract import Extracted  # noqa: F401
from .pdf import read_pdf  # noqa: F401
from .web import read_html  # noqa: F401
from .word import read_docx  # noqa: F401
