"""Domain exceptions: each message names the bad value and says how to fix it."""

from __future__ import annotations


class QAError(Exception):
    """Base class for every error the CLI and app show as one line."""


class CorpusError(QAError):
    """The corpus could not be read or holds nothing indexable."""


class EmptyCorpusError(CorpusError):
    """The corpus holds no document that can be indexed (an index needs one)."""


class IndexMissingError(QAError):
    """No index exists where one was expected."""


class IndexMismatchError(QAError):
    """The index on disk was built with another format, encoder or settings."""


class IndexOutdatedError(IndexMismatchError):
    """The index was written by an older version of this format; rebuilding upgrades it."""


class IndexCorruptError(QAError):
    """A file of the index is missing, truncated or fails its checksum."""


class EncoderError(QAError):
    """An encoder spec is unknown or its model cannot be loaded."""


class QuestionError(QAError):
    """A question or evaluation file is unusable."""


class IndexLockedError(QAError):
    """Another build holds the index lock."""


class IndexWriteError(QAError):
    """The index folder cannot be written (no space left, read-only, not a folder)."""


class BenchError(QAError):
    """A bench setting or input that cannot work; the message says how to fix it."""


class FeedbackError(QAError):
    """A feedback record or feedback file that cannot be used; the message says which field and why."""


class IndexServiceError(QAError):
    """The engine holding the index (Milvus) cannot be reached, or refused a request."""
