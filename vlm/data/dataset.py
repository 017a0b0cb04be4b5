"""Parquet files in the layout of fashion-product-images-small: writing, reading and splitting.

The image column is read either as the struct ``{"bytes", "path"}`` that a Hugging Face ``datasets`` export
writes for an Image feature, or as a plain binary column. Training, evaluation and the demo all load
examples through ``iter_examples``, so they decode images and map labels the same way.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from catalog_enrich.schema import FIELDS, labels_from_record

log = logging.getLogger(__name__)

#: rows buffered before a row group is written; bounds memory whatever the number of rows
ROWS_PER_GROUP = 256

#: the columns and types of a written file, matching a ``datasets`` parquet export of the real dataset
ARROW_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("gender", pa.string()),
        ("masterCategory", pa.string()),
        ("subCategory", pa.string()),
        ("articleType", pa.string()),
        ("baseColour", pa.string()),
        ("season", pa.string()),
        ("year", pa.int64()),
        ("usage", pa.string()),
        ("productDisplayName", pa.string()),
        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
    ]
)

#: the columns a reader needs: the id, the image and one column per schema field
_LABEL_COLUMNS = tuple(f.source_column for f in FIELDS)


@dataclass(frozen=True)
class Example:
    """One labelled product image.

    id: the product id from the ``id`` column.
    image: the decoded image, RGB and fully loaded.
    labels: the attributes keyed by schema name (product_name, product_type, color, gender, season, usage).
    """

    id: int
    image: Image.Image = field(compare=False)
    labels: dict[str, str] = field(compare=False)


def write_parquet(records: Iterable[dict], path: str | Path, *, rows_per_group: int = ROWS_PER_GROUP) -> int:
    """Stream records into a parquet file, one row group at a time; returns the number of rows.

    The file appears under its name only once complete, so an interrupted run leaves no truncated file.
    """
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    rows = 0
    try:
        with pq.ParquetWriter(partial, ARROW_SCHEMA) as writer:
            batch: list[dict] = []
            for record in records:
                batch.append(record)
                if len(batch) >= rows_per_group:
                    writer.write_table(pa.Table.from_pylist(batch, schema=ARROW_SCHEMA))
                    rows += len(batch)
                    batch = []
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=ARROW_SCHEMA))
                rows += len(batch)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return rows


def image_bytes(value: dict | bytes | None) -> bytes | None:
    """The encoded image of one image-column cell, whether stored as a struct or as plain binary."""
    if isinstance(value, dict):
        return value.get("bytes")
    return value


def decode_image(data: bytes) -> Image.Image:
    """Decoded RGB image from encoded bytes, loaded so the buffer can be dropped."""
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def iter_examples(path: str | Path, *, batch_rows: int = ROWS_PER_GROUP) -> Iterator[Example]:
    """Stream the labelled examples of a parquet file; rows without an image or a label are skipped."""
    source = pq.ParquetFile(path)
    missing = sorted({"id", "image", *_LABEL_COLUMNS} - set(source.schema_arrow.names))
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}; expected the fashion-product layout")
    skipped = 0
    for batch in source.iter_batches(batch_size=batch_rows, columns=["id", "image", *_LABEL_COLUMNS]):
        for row in batch.to_pylist():
            data = image_bytes(row["image"])
            # the real dataset has rows with empty usage or colour; they cannot serve as training targets
            if not data or any(row[column] in (None, "") for column in _LABEL_COLUMNS):
                skipped += 1
                continue
            yield Example(id=int(row["id"]), image=decode_image(data), labels=labels_from_record(row))
    if skipped:
        log.warning("%s: skipped %d row(s) with no image or an empty label", path, skipped)


def read_examples(path: str | Path) -> list[Example]:
    """Every labelled example of a parquet file, in file order."""
    return list(iter_examples(path))


def _split_key(seed: int, example_id: int) -> bytes:
    return hashlib.blake2b(f"{seed}:{example_id}".encode(), digest_size=8).digest()


def split_examples(
    examples: Sequence[Example], holdout_fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Deterministic (train, holdout) split by hashed id; both keep the input order.

    Hashing the id rather than shuffling positions keeps an example on the same side however the input is
    ordered, and keeps rows that share an id together.
    """
    if not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in [0, 1), got {holdout_fraction}")
    ids = sorted({example.id for example in examples}, key=lambda example_id: _split_key(seed, example_id))
    count = round(len(ids) * holdout_fraction)
    if holdout_fraction > 0 and len(ids) > 1:
        # a requested holdout is never empty, and never takes every id
        count = min(max(count, 1), len(ids) - 1)
    held = set(ids[:count])
    train = [example for example in examples if example.id not in held]
    holdout = [example for example in examples if example.id in held]
    return train, holdout


def image_relpath(record: dict) -> str:
    """Where a record's image goes under an images folder: ``<articleType>/<id>.jpg``."""
    return f"{record['articleType']}/{record['id']}.jpg"


def export_images(records: Iterable[dict], images_dir: str | Path) -> Iterator[dict]:
    """Pass records through unchanged, writing each one's image bytes to ``images_dir/image_relpath``."""
    root = Path(images_dir)
    for record in records:
        data = image_bytes(record["image"])
        if not data:
            raise ValueError(f"record {record['id']} has no image bytes to export")
        target = root / image_relpath(record)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        yield record
