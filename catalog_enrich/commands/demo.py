"""``catalog demo``: local servers, a tiny trained model, 200 product images, a worker, enriched rows."""

from __future__ import annotations

import argparse

HELP = "run the whole pipeline locally on sample images and show the enriched catalog"


def configure(parser: argparse.ArgumentParser) -> None:
    """The demo takes no arguments; CATALOG_HOME chooses where its state lives."""


def run(args: argparse.Namespace) -> int:
    """Run the demo."""
    from catalog_enrich.demo import main

    return main()
