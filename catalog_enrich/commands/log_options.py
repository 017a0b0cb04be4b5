"""``--log-json`` and the start-up checks shared by the commands that run Celery processes (worker,
control-worker, beat)."""

from __future__ import annotations

import argparse
import os
import sys

from catalog_enrich.settings import Settings, SettingsError

#: the variable behind ``--log-json``; set in the environment so forked pool processes inherit the choice
LOG_FORMAT_VARIABLE = "CATALOG_LOG_FORMAT"


def add_log_json(parser: argparse.ArgumentParser) -> None:
    """Add ``--log-json``."""
    parser.add_argument(
        "--log-json",
        action="store_true",
        help=f"log one JSON object per line, with run and batch ids (same as {LOG_FORMAT_VARIABLE}=json)",
    )


def apply_log_json(args: argparse.Namespace) -> None:
    """Make ``--log-json`` the log format of this process and its children; call before reading settings."""
    if args.log_json:
        os.environ[LOG_FORMAT_VARIABLE] = "json"
        # progress bars (transformers' "Loading weights") would break the one-object-per-line stream
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def start_logging(settings: Settings, level: str) -> None:
    """Configure logging now, so lines written before Celery starts have the same format as the rest."""
    from catalog_enrich.log_format import configure_logging

    configure_logging(log_format=settings.log_format, level=level)


def process_settings(args: argparse.Namespace, *, needs_database: bool) -> Settings | None:
    """The checked settings of a Celery process, with logging started; None after printing what is wrong."""
    apply_log_json(args)
    try:
        settings = Settings.from_env()
        settings.require_broker_url()
        if needs_database:
            settings.require_database_url()
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    start_logging(settings, args.loglevel)
    return settings


def celery_flags(settings: Settings) -> list[str]:
    """Celery's options that go before the subcommand: ``--quiet`` in JSON mode (its banner is not JSON)."""
    return ["--quiet"] if settings.log_format == "json" else []
