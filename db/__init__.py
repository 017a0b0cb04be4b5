"""The catalog database: tables (``models``), connections (``engine``) and idempotent writes (``catalog``,
``ledger``). Nothing here imports the worker or the model code."""

from db.catalog import CatalogResult, enriched_etags, upsert_catalog_rows
from db.engine import make_engine, make_session_factory
from db.ledger import (
    DeadLetterRecord,
    ItemOutcome,
    ItemRef,
    LedgerItem,
    add_ledger_items,
    assign_batch,
    create_run,
    finish_run,
    record_dead_letters,
    record_deliveries,
    record_item_outcomes,
    run_counts,
    set_run_counts,
    unfinished_items,
)

__all__ = [
    "CatalogResult",
    "DeadLetterRecord",
    "ItemOutcome",
    "ItemRef",
    "LedgerItem",
    "add_ledger_items",
    "assign_batch",
    "create_run",
    "enriched_etags",
    "finish_run",
    "make_engine",
    "make_session_factory",
    "record_dead_letters",
    "record_deliveries",
    "record_item_outcomes",
    "run_counts",
    "set_run_counts",
    "unfinished_items",
    "upsert_catalog_rows",
]
