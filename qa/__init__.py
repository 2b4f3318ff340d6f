"""Retrieval question answering over a folder of documents, with verbatim cited quotes."""

from .build import BuildReport
from .config import Config
from .errors import QAError
from .pipeline import Pipeline
from .schema import Answer, Document, Hit, Passage, Quote

__version__ = "0.1.0"
__all__ = ["Answer", "BuildReport", "Config", "Document", "Hit", "Passage", "Pipeline", "QAError", "Quote"]
