"""Catalog write rate: rows per second of ``upsert_catalog_rows``, one transaction per batch as the worker does."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from catalog_enrich.schema import SCHEMA_VERSION
from db.catalog import CatalogResult, upsert_catalog_rows
from db.engine import make_engine, make_session_factory
from db.ledger import create_run

#: batch sizes measured: the default message size and a large one
BATCH_SIZES = (16, 64)

#: a valid attribute set (the values only have to pass the table's checks)
ATTRIBUTES = {
    "product_name": "Men Navy Blue Solid Tshirts",
    "product_type": "Tshirts",
    "color": "Navy Blue",
    "gender": "Men",
    "season": "Summer",
    "usage": "Casual",
}


def _results(run_id: str, batch_size: int, start: int, count: int) -> list[CatalogResult]:
    raw = '{"product_name":"Men Navy Blue Solid Tshirts","product_type":"Tshirts"}'
    return [
        CatalogResult(
            bucket="bench-catalog",
            key=f"b{batch_size}/{number:08d}.jpg",
            attributes=ATTRIBUTES,
            raw_output=raw,
            etag=f"{number:032x}",
            model_version="bench",
            schema_version=SCHEMA_VERSION,
            run_id=run_id,
            latency_ms=120,
        )
        for number in range(start, start + count)
    ]


def measure_catalog_writes(
    database_url: str, *, batch_sizes: Sequence[int] = BATCH_SIZES, rows: int = 2048
) -> dict[str, Any]:
    """Upsert ``rows`` new rows per batch size into the (scratch) database at ``database_url``."""
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    try:
        with sessions.begin() as session:
            run_id = create_run(session, bucket="bench-catalog", prefix="", model_version="bench", parameters={})
        rates: dict[str, float] = {}
        for size in batch_sizes:
            batches = [_results(run_id, size, start, min(size, rows - start)) for start in range(0, rows, size)]
            started = time.perf_counter()
            for batch in batches:
                with sessions.begin() as session:
                    written = upsert_catalog_rows(session, batch)
                if written != len(batch):
                    raise RuntimeError(f"upsert wrote {written} of {len(batch)} rows")
            rates[str(size)] = rows / (time.perf_counter() - started)
    finally:
        engine.dispose()
    return {"db_rows_per_s": rates, "db_rows_per_batch_size": rows}
