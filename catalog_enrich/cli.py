"""The ``catalog`` command: parses arguments and hands each subcommand to its module."""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> module with ``HELP``, ``configure(parser)`` and ``run(args) -> int``; command modules
#: import heavy libraries (torch, celery) inside ``run`` so ``catalog --help`` stays instant
COMMANDS: dict[str, str] = {
    "validate": "catalog_enrich.commands.validate",
    "synth": "catalog_enrich.commands.synth",
    "tiny-model": "catalog_enrich.commands.tiny_model",
    "train": "catalog_enrich.commands.train",
    "evaluate": "catalog_enrich.commands.evaluate",
    "services": "catalog_enrich.commands.services",
    "migrate": "catalog_enrich.commands.migrate",
    "worker": "catalog_enrich.commands.worker",
    "control-worker": "catalog_enrich.commands.control_worker",
    "beat": "catalog_enrich.commands.beat",
    "demo": "catalog_enrich.commands.demo",
    "status": "catalog_enrich.commands.status",
    "report": "catalog_enrich.commands.report",
    "flower": "catalog_enrich.commands.flower",
    "bench": "catalog_enrich.commands.bench",
    "reliability": "catalog_enrich.commands.reliability",
}


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="catalog", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``catalog`` console script."""
    args = build_parser().parse_args(argv)
    from catalog_enrich.services.process import ServiceError
    from catalog_enrich.settings import SettingsError

    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ServiceError, SettingsError) as error:
        # a local server that cannot start or a setting to fix: the message says what to do, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
