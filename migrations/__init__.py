"""Alembic migrations of the catalog database, runnable from code (``upgrade``, ``downgrade``) and by
``catalog migrate``; ``alembic -c migrations/alembic.ini ...`` works too."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

#: this folder: alembic's script location, shipped inside the package
HERE = Path(__file__).resolve().parent


def alembic_config(url: str | None = None) -> Config:
    """An Alembic configuration for this project, for ``url`` (default: the URL from the settings)."""
    config = Config(str(HERE / "alembic.ini"))
    config.set_main_option("script_location", str(HERE))
    # passed as an attribute, not an ini option: ini values treat % (common in encoded passwords) specially
    config.attributes["url"] = url
    return config


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision``."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``base`` removes every table)."""
    command.downgrade(alembic_config(url), revision)
