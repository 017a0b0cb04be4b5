"""Plain-text answers to the questions people ask of the enriched catalog, straight from SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, text

from catalog_enrich.schema import KEYS

#: what the catalog holds, by type and colour: the first thing a merchandiser asks
COUNTS_BY_TYPE_AND_COLOR = """
SELECT product_type, color, count(*) AS items
FROM catalog WHERE bucket = :bucket
GROUP BY product_type, color ORDER BY items DESC, product_type, color LIMIT 12
"""

COUNTS_BY_TYPE = """
SELECT product_type, count(*) AS items FROM catalog WHERE bucket = :bucket
GROUP BY product_type ORDER BY items DESC, product_type
"""

COUNTS_BY_GENDER_SEASON = """
SELECT gender, season, count(*) AS items FROM catalog WHERE bucket = :bucket
GROUP BY gender, season ORDER BY gender, season
"""

SAMPLE_ROWS = """
SELECT key, product_name, product_type, color, gender, season, usage
FROM catalog WHERE bucket = :bucket ORDER BY key LIMIT 8
"""


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as an aligned text table."""
    cells = [[str(value) for value in row] for row in rows]
    widths = [max([len(header)] + [len(row[i]) for row in cells]) for i, header in enumerate(headers)]
    lines = ["  ".join(header.ljust(width) for header, width in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _query(connection: Connection, title: str, sql: str, bucket: str) -> None:
    result = connection.execute(text(sql), {"bucket": bucket})
    print(f"\n{title}\n{sql.strip()}\n")
    print(format_table(list(result.keys()), result.all()))


def accuracy_against(connection: Connection, bucket: str, labels: dict[str, dict[str, str]]) -> dict[str, float]:
    """Per-attribute share of catalog rows equal to the known labels (missing rows count as wrong)."""
    # column names cannot be bound parameters; these are the schema's attribute names, fixed in code
    columns = ", ".join(KEYS)
    rows = connection.execute(text(f"SELECT key, {columns} FROM catalog WHERE bucket = :bucket"), {"bucket": bucket})
    stored = {row.key: row._mapping for row in rows}
    correct = dict.fromkeys(KEYS, 0)
    for key, truth in labels.items():
        row = stored.get(key)
        for attribute in KEYS:
            if row is not None and row[attribute] == truth[attribute]:
                correct[attribute] += 1
    return {attribute: correct[attribute] / len(labels) for attribute in KEYS} if labels else {}


def print_catalog_report(connection: Connection, bucket: str, labels: dict[str, dict[str, str]]) -> dict[str, float]:
    """Print the example queries and the accuracy against ``labels``; returns that accuracy."""
    _query(connection, "Items by product type:", COUNTS_BY_TYPE, bucket)
    _query(connection, "Most common type and colour pairs:", COUNTS_BY_TYPE_AND_COLOR, bucket)
    _query(connection, "Items by gender and season:", COUNTS_BY_GENDER_SEASON, bucket)
    _query(connection, "A few enriched rows:", SAMPLE_ROWS, bucket)
    accuracy = accuracy_against(connection, bucket, labels)
    print("\nAccuracy against the labels the images were drawn with:\n")
    print(format_table(["attribute", "accuracy"], [(k, f"{v:.3f}") for k, v in accuracy.items()]))
    return accuracy
