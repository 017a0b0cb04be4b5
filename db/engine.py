"""Engines and sessions for the catalog database.

Write functions in ``db.catalog`` and ``db.ledger`` never commit: callers own the transaction, usually as
``with factory.begin() as session: ...`` so a batch's results and its ledger updates commit together.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` whose pooled connections are checked before use."""
    # workers hold connections for hours between batches; a restarted server must not fail the next batch
    return create_engine(url, pool_pre_ping=True, **kwargs)


def make_session_factory(bind: Engine | str) -> sessionmaker[Session]:
    """A session factory for an engine or a URL; use ``factory.begin()`` for one transaction."""
    engine = make_engine(bind) if isinstance(bind, str) else bind
    # objects stay readable after commit: results are handed on after the transaction ends
    return sessionmaker(engine, expire_on_commit=False)
