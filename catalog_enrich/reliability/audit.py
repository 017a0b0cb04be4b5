"""The audit at the end of a scenario: where every image of the bucket ended, and how often.

An image is accounted for when it has a catalog row from this run or a dead letter. It is lost when it
has neither, and duplicated when it has more than one final record (a row and a dead letter, two ledger
rows, two dead letters). The catalog must also hold nothing the schema refuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from sqlalchemy import text

from catalog_enrich.normalization import NormalizationError
from catalog_enrich.validation import validate_attributes

PER_KEY = text(
    """
    SELECT keys.key,
           (SELECT count(*) FROM enrichment_items i WHERE i.run_id = :run_id AND i.key = keys.key) AS ledger_rows,
           (SELECT count(*) FROM catalog c WHERE c.bucket = :bucket AND c.key = keys.key AND c.run_id = :run_id)
               AS catalog_rows,
           (SELECT count(*) FROM dead_letters d WHERE d.run_id = :run_id AND d.key = keys.key) AS letters,
           (SELECT coalesce(sum(greatest(i.deliveries - 1, 0)), 0) FROM enrichment_items i
               WHERE i.run_id = :run_id AND i.key = keys.key) AS extra_deliveries,
           (SELECT max(i.batch_id) FROM enrichment_items i WHERE i.run_id = :run_id AND i.key = keys.key)
               AS batch_id
    FROM unnest(CAST(:keys AS text[])) AS keys(key)
    """
)

RUN_ROWS = text("SELECT attributes FROM catalog WHERE run_id = :run_id")

SENT_BATCHES = text("SELECT key, batch_id FROM enrichment_items WHERE run_id = :run_id")


@dataclass(frozen=True)
class Tally:
    """The accounting of one scenario.

    items: images in the bucket. enriched: with a catalog row. dead_lettered: with a dead letter.
    lost: with neither. duplicated: with more than one final record. re_executed: deliveries beyond the
    first, summed over images (at-least-once execution at work). recovered: images that reached a final
    state only after a redelivery or a resend. invalid: catalog rows the schema refuses.
    """

    items: int
    enriched: int
    dead_lettered: int
    lost: int
    duplicated: int
    re_executed: int
    recovered: int
    invalid: int

    def as_dict(self) -> dict[str, int]:
        """The figures as a dict."""
        return asdict(self)


def sent_batches(database_url: str, run_id: str) -> dict[str, str]:
    """Each item's batch as the producer sent it: key -> batch id (a resend gives it a new one)."""
    from db.engine import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return dict(connection.execute(SENT_BATCHES, {"run_id": run_id}).all())
    finally:
        engine.dispose()


def is_valid(attributes: object) -> bool:
    """Whether stored attributes are exactly what validation makes of them."""
    try:
        return validate_attributes(attributes) == attributes
    except NormalizationError:
        return False


def audit_run(
    database_url: str, run_id: str, bucket: str, keys: Iterable[str], first_batches: dict[str, str] | None = None
) -> Tally:
    """Account for every key of ``keys`` uploaded to ``bucket`` and enqueued in run ``run_id``.

    ``first_batches`` (from ``sent_batches`` right after enqueueing) tells which items were resent.
    """
    from db.engine import make_engine

    keys = list(keys)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(PER_KEY, {"run_id": run_id, "bucket": bucket, "keys": keys}).all()
            stored = connection.execute(RUN_ROWS, {"run_id": run_id}).scalars().all()
    finally:
        engine.dispose()
    enriched = sum(1 for row in rows if row.catalog_rows)
    lettered = sum(1 for row in rows if row.letters)
    lost = sum(1 for row in rows if not row.catalog_rows and not row.letters)
    duplicated = sum(
        1 for row in rows if row.catalog_rows + row.letters > 1 or row.ledger_rows > 1 or row.catalog_rows > 1
    )
    invalid = sum(1 for attributes in stored if not is_valid(attributes))
    return Tally(
        items=len(keys),
        enriched=enriched,
        dead_lettered=lettered,
        lost=lost,
        duplicated=duplicated,
        re_executed=sum(int(row.extra_deliveries) for row in rows),
        recovered=sum(
            1
            for row in rows
            if (row.catalog_rows or row.letters)
            and (row.extra_deliveries or (first_batches and first_batches.get(row.key) != row.batch_id))
        ),
        invalid=invalid,
    )
