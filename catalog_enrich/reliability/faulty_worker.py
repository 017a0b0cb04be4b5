"""``python -m catalog_enrich.reliability.faulty_worker [catalog worker options]``: a worker with faults.

The same worker as ``catalog worker``, with the fault plan of ``CATALOG_FAULTS`` installed first.
"""

from __future__ import annotations

import sys

from catalog_enrich.reliability.faults import FaultPlan, install


def main(argv: list[str] | None = None) -> int:
    """Install the faults, then run ``catalog worker`` with ``argv``."""
    install(FaultPlan.from_env())
    from catalog_enrich.cli import main as catalog_main

    return catalog_main(["worker", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
