"""Initial tables: enrichment_runs, enrichment_items, dead_letters and catalog.

The attribute columns and their vocabularies are a snapshot of ``catalog_enrich.schema`` at schema
version 1. A later schema change gets its own revision; tests compare this database with the models
(which are generated from the schema) so a change without a migration fails.

Revision ID: 0001
Revises:
Create Date: 2025-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

RUN_STATUSES = ("enqueuing", "running", "completed", "failed", "cancelled")
ITEM_STATUSES = ("queued", "failed", "dead_lettered", "done")

#: (name, max_length, vocabulary or None) of each attribute at schema version 1
ATTRIBUTES = (
    ("product_name", 100, None),
    ("product_type", 40, None),
    ("color", 30, None),
    ("gender", 6, ("Men", "Women", "Boys", "Girls", "Unisex")),
    ("season", 6, ("Summer", "Winter", "Fall", "Spring")),
    ("usage", 12, ("Casual", "Formal", "Sports", "Ethnic", "Party", "Smart Casual", "Travel", "Home")),
)


# names are wrapped in op.f(): they are final, and the models' naming convention must not prefix them again


def one_of(column: str, choices: tuple[str, ...]) -> str:
    """SQL for a check that ``column`` holds one of ``choices``."""
    # DDL cannot take bound parameters; the column and its choices are this revision's constants, never input
    return f"{column} IN ({', '.join(repr(choice) for choice in choices)})"


def timestamp(name: str) -> sa.Column:
    """A NOT NULL timestamp column that defaults to now."""
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def counter(name: str, default: str = "0") -> sa.Column:
    """A NOT NULL integer column with a default."""
    return sa.Column(name, sa.Integer(), server_default=default, nullable=False)


def upgrade() -> None:
    """Create the four tables with their keys, indexes and checks."""
    op.create_table(
        "enrichment_runs",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("bucket", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), server_default="", nullable=False),
        sa.Column("parameters", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="enqueuing", nullable=False),
        *(counter(name) for name in ("listed", "skipped", "enqueued", "done", "failed", "dead_lettered")),
        timestamp("started_at"),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_enrichment_runs"),
        sa.CheckConstraint(one_of("status", RUN_STATUSES), name=op.f("ck_enrichment_runs_status")),
    )
    op.create_index("ix_enrichment_runs_status", "enrichment_runs", ["status"])

    op.create_table(
        "enrichment_items",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("bucket", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column("batch_id", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="queued", nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        counter("attempts"),
        counter("deliveries"),
        timestamp("enqueued_at"),
        timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_enrichment_items"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["enrichment_runs.id"],
            name="fk_enrichment_items_run_id_enrichment_runs",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("run_id", "bucket", "key", name="uq_enrichment_items_run_id_bucket_key"),
        sa.CheckConstraint(one_of("status", ITEM_STATUSES), name=op.f("ck_enrichment_items_status")),
    )
    op.create_index("ix_enrichment_items_status", "enrichment_items", ["status"])

    op.create_table(
        "dead_letters",
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("bucket", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw_output", sa.Text(), nullable=True),
        counter("attempts"),
        sa.Column("model_version", sa.Text(), nullable=False),
        timestamp("created_at"),
        sa.PrimaryKeyConstraint("item_id", name="pk_dead_letters"),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["enrichment_items.id"],
            name="fk_dead_letters_item_id_enrichment_items",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["enrichment_runs.id"],
            name="fk_dead_letters_run_id_enrichment_runs",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_dead_letters_run_id", "dead_letters", ["run_id"])

    op.create_table(
        "catalog",
        sa.Column("bucket", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("attributes", postgresql.JSONB(), nullable=False),
        sa.Column("raw_output", sa.Text(), nullable=True),
        sa.Column("etag", sa.Text(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("schema_version", sa.Text(), nullable=False),
        sa.Column("run_id", sa.Text(), nullable=False),
        counter("attempts", default="1"),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        timestamp("created_at"),
        timestamp("updated_at"),
        *(sa.Column(name, sa.String(length), nullable=False) for name, length, _ in ATTRIBUTES),
        sa.PrimaryKeyConstraint("bucket", "key", name="pk_catalog"),
        sa.ForeignKeyConstraint(["run_id"], ["enrichment_runs.id"], name="fk_catalog_run_id_enrichment_runs"),
        *(
            sa.CheckConstraint(one_of(name, choices), name=op.f(f"ck_catalog_{name}"))
            for name, _, choices in ATTRIBUTES
            if choices is not None
        ),
    )
    for name in ("model_version", "run_id", *(name for name, _, _ in ATTRIBUTES)):
        op.create_index(f"ix_catalog_{name}", "catalog", [name])


def downgrade() -> None:
    """Drop the four tables (their indexes and constraints go with them)."""
    for table in ("catalog", "dead_letters", "enrichment_items", "enrichment_runs"):
        op.drop_table(table)
