"""``catalog migrate``: bring the catalog database's tables up to date (or back to a revision)."""

from __future__ import annotations

import argparse
import sys

HELP = "create or update the catalog database tables (alembic upgrade head), or --downgrade REV"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add --downgrade and --url."""
    parser.add_argument("--downgrade", metavar="REV", help="migrate down to REV instead (`base`: drop all)")
    parser.add_argument("--url", help="database URL (default: CATALOG_DATABASE_URL or the local server)")


def run(args: argparse.Namespace) -> int:
    """Run the migration; 1 with advice when there is no database to migrate."""
    import migrations
    from catalog_enrich.masking import mask_url
    from catalog_enrich.settings import Settings, SettingsError, normalize_database_url

    try:
        url = normalize_database_url(args.url) if args.url else Settings.from_env().require_database_url()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.downgrade:
        migrations.downgrade(url, args.downgrade)
        print(f"{mask_url(url)}: downgraded to {args.downgrade}")
    else:
        migrations.upgrade(url)
        print(f"{mask_url(url)}: up to date")
    return 0
