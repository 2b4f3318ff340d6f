"""Retrieval question answering over a folder of documents, with verbatim cited quotes."""

from .errors import QAError
from .pipeline import BuildReport, Pipeline, SearchConfig
from .schema import Answer, Document, Hit, Passage, Quote
from .split import SplitConfig

__version__ = "0.1.0"
__all__ = ["Answer", "BuildReport", "Document", "Hit", "Passage", "Pipeline", "QAError", "Quote", "SearchConfig", "SplitConfig"]
