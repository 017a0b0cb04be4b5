"""Migrations: they round-trip, and the migrated database matches the models (and so the schema)."""

from __future__ import annotations

import re

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, pool, text

import migrations
from catalog_enrich.schema import FIELDS
from db.models import Base

pytestmark = pytest.mark.services


def drift(url: str) -> list:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)


def tables(url: str) -> set[str]:
    return set(inspect(create_engine(url, poolclass=pool.NullPool)).get_table_names())


def test_upgrade_downgrade_upgrade_round_trips(blank_database_url: str) -> None:
    migrations.upgrade(blank_database_url)
    assert drift(blank_database_url) == []
    migrations.downgrade(blank_database_url, "base")
    assert tables(blank_database_url) == {"alembic_version"}
    migrations.upgrade(blank_database_url)
    assert tables(blank_database_url) >= {"catalog", "enrichment_runs", "enrichment_items", "dead_letters"}
    assert drift(blank_database_url) == []


def test_vocabulary_checks_match_the_schema(database_url: str) -> None:
    engine = create_engine(database_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        definitions = dict(
            connection.execute(
                text("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'c'")
            ).all()
        )
    for field in FIELDS:
        if field.kind == "enum":
            allowed = set(re.findall(r"'([^']*)'", definitions[f"ck_catalog_{field.name}"]))
            assert allowed == set(field.choices), field.name


def test_attribute_columns_follow_the_schema(database_url: str) -> None:
    columns = {column["name"]: column for column in inspect(create_engine(database_url)).get_columns("catalog")}
    for field in FIELDS:
        assert columns[field.name]["type"].length == field.max_length
