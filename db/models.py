"""The database tables: enriched products, enrichment runs, the per-image ledger and dead letters.

The attribute columns of ``catalog`` are generated from ``catalog_enrich.schema.FIELDS``: each field becomes
a ``VARCHAR(max_length)`` column with an index, and each closed vocabulary becomes a check constraint.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from catalog_enrich.schema import FIELDS

#: states of one enrichment run: ``enqueuing`` while the producer still lists and sends (the run may not be
#: completed yet even if every item sent so far is final), ``running`` once everything is sent
RUN_STATUSES = ("enqueuing", "running", "completed", "failed", "cancelled")

#: states of one ledger item, in order of progress; ``failed`` may still be retried
ITEM_STATUSES = ("queued", "failed", "dead_lettered", "done")

#: ledger states a late or duplicate delivery may not move an item out of
FINAL_ITEM_STATUSES = ("dead_lettered", "done")

#: fixed constraint and index names, so the models and the migrations name everything the same way
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def clean_text(value: str | None) -> str | None:
    """``value`` made storable in PostgreSQL text: NUL characters and lone surrogates replaced."""
    if value is None:
        return None
    # model output is untrusted: Postgres text refuses NUL, and psycopg cannot encode lone surrogates
    return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def one_of(column: str, choices: tuple[str, ...]) -> str:
    """SQL for a check that ``column`` holds one of ``choices`` (the choices come from code, not input)."""
    quoted = ", ".join("'" + choice.replace("'", "''") + "'" for choice in choices)
    return f"{column} IN ({quoted})"


class Base(DeclarativeBase):
    """Declarative base of every table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class EnrichmentRun(Base):
    """One enqueue: the images listed under a bucket prefix and what became of them."""

    __tablename__ = "enrichment_runs"
    __table_args__ = (CheckConstraint(one_of("status", RUN_STATUSES), name="status"),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    bucket: Mapped[str] = mapped_column(Text)
    prefix: Mapped[str] = mapped_column(Text, server_default="")
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    model_version: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=RUN_STATUSES[0], index=True)
    listed: Mapped[int] = mapped_column(Integer, server_default="0")
    skipped: Mapped[int] = mapped_column(Integer, server_default="0")
    enqueued: Mapped[int] = mapped_column(Integer, server_default="0")
    done: Mapped[int] = mapped_column(Integer, server_default="0")
    failed: Mapped[int] = mapped_column(Integer, server_default="0")
    dead_lettered: Mapped[int] = mapped_column(Integer, server_default="0")
    started_at: Mapped[datetime] = _created_at()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EnrichmentItem(Base):
    """The ledger: one image of one run, from enqueue to a final state."""

    __tablename__ = "enrichment_items"
    __table_args__ = (
        UniqueConstraint("run_id", "bucket", "key"),
        CheckConstraint(one_of("status", ITEM_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("enrichment_runs.id", ondelete="CASCADE"))
    bucket: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    etag: Mapped[str] = mapped_column(Text)
    batch_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="queued", index=True)
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    deliveries: Mapped[int] = mapped_column(Integer, server_default="0")
    enqueued_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()


class DeadLetter(Base):
    """An image the model could not enrich after every attempt, kept with its evidence for review."""

    __tablename__ = "dead_letters"

    item_id: Mapped[int] = mapped_column(ForeignKey("enrichment_items.id", ondelete="CASCADE"), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("enrichment_runs.id", ondelete="CASCADE"), index=True)
    bucket: Mapped[str] = mapped_column(Text)
    key: Mapped[str] = mapped_column(Text)
    etag: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    raw_output: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    model_version: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()


class CatalogRow(Base):
    """The enriched attributes of one image, keyed by where it is stored; the columns below are fixed,
    the attribute columns are added from the schema after the class body."""

    __tablename__ = "catalog"

    bucket: Mapped[str] = mapped_column(Text, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB)
    raw_output: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str] = mapped_column(Text)
    model_version: Mapped[str] = mapped_column(Text, index=True)
    schema_version: Mapped[str] = mapped_column(Text)
    run_id: Mapped[str] = mapped_column(ForeignKey("enrichment_runs.id"), index=True)
    attempts: Mapped[int] = mapped_column(Integer, server_default="1")
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()


def _add_attribute_columns() -> None:
    """One typed, indexed column per schema field, and a check constraint per closed vocabulary."""
    table = CatalogRow.__table__
    for schema_field in FIELDS:
        column = mapped_column(schema_field.name, String(schema_field.max_length), nullable=False)
        setattr(CatalogRow, schema_field.name, column)
        Index(None, table.c[schema_field.name])
        if schema_field.kind == "enum":
            table.append_constraint(
                CheckConstraint(one_of(schema_field.name, schema_field.choices), name=schema_field.name)
            )


_add_attribute_columns()

#: the attribute column names, in schema order
ATTRIBUTE_COLUMNS: tuple[str, ...] = tuple(schema_field.name for schema_field in FIELDS)
