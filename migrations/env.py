"""Alembic's entry point: connects to the catalog database and runs the migration scripts."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from db.models import Base


def database_url() -> str:
    """The URL given by the caller, else the ini option, else the project settings."""
    config = context.config
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from catalog_enrich.settings import Settings

    return Settings.from_env().require_database_url()


def run_offline() -> None:
    """Print the SQL instead of running it (``alembic upgrade head --sql``)."""
    context.configure(url=database_url(), target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run the migrations against the database, in one transaction."""
    # no pool: a migration is one short connection, nothing should linger after it
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
