"""Index spec: what ``--index`` names, and the store that holds it.

``DIR`` is an index folder (``FolderStore``, the default); ``milvus:PATH.db`` Milvus Lite in a local
file, and ``milvus:http://HOST:19530[/NAME]`` a Milvus server or cluster (``MilvusStore``).

>>> open_store("index").location
PosixPath('index')
>>> open_store("milvus:http://milvus.internal:19530/news").name
'news'
"""

from __future__ import annotations

from pathlib import Path

from .errors import QAError
from .folder_store import FolderStore
from .milvus_store import MilvusStore
from .stores import Store

MILVUS_PREFIX = "milvus:"


def index_arg(text: str) -> Path | str:
    """What ``--index TEXT`` names: a ``milvus:…`` spec as it is (a path would fold ``//``), else a folder."""
    return text if text.startswith(MILVUS_PREFIX) else Path(text)


def open_store(location: str | Path | Store) -> Store:
    """The store ``location`` names (a ``Store`` is returned as it is); nothing is read yet."""
    if isinstance(location, Store):
        return location
    if isinstance(location, str) and location.startswith(MILVUS_PREFIX):
        return MilvusStore(location)
    return FolderStore(location)


def parse_shard(text: str) -> tuple[int, int]:
    """``--shard I/N`` as (I, N), 1 <= I <= N."""
    i, _, n = text.partition("/")
    try:
        shard = int(i), int(n)
    except ValueError:
        shard = (0, 0)
    if not 1 <= shard[0] <= shard[1]:
        raise QAError(f"--shard {text!r}; expected I/N with 1 <= I <= N, e.g. --shard 2/4 on the second of 4 "
                      f"machines")
    return shard
