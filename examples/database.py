"""The one way an example finds and opens its own database: its ``<NAME>_DATABASE_URL`` setting,
else a SQLite file under the data directory; the engine made once per URL, its tables created."""
from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from sqlalchemy import MetaData, create_engine
from sqlalchemy.engine import Engine

from monitoring.db import data_dir


def example_database_url(environ: Mapping[str, str], settings: tuple[str, ...], sqlite_file: str) -> str:
    """The first of ``settings`` set in ``environ``, else ``sqlite_file`` under the data directory."""
    for name in settings:
        explicit = (environ.get(name) or "").strip()
        if explicit:
            return explicit
    return f"sqlite:///{data_dir(environ).resolve() / sqlite_file}"


@lru_cache(maxsize=16)
def example_engine(url: str, metadata: MetaData, *, pool_size: int | None = None) -> Engine:
    """The engine for ``url`` with ``metadata``'s tables created (a SQLite file's folder too)."""
    if url.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(url.removeprefix("sqlite:///")) or ".", exist_ok=True)
    pool = {"pool_size": pool_size, "max_overflow": pool_size} if pool_size and url.startswith("postgresql") else {}
    engine = create_engine(url, future=True, **pool)
    metadata.create_all(engine)
    return engine
