"""What a run produced, gathered for its HTML report: enriched rows with thumbnails, dead letters,
each attribute's distribution and the run's timings.

The rows come from PostgreSQL, the thumbnails from S3 (downscaled to small JPEGs so the page stays one
self-contained file). Nothing here formats HTML; ``catalog_enrich.report_page`` does, escaping every value.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageOps
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog_enrich.run_status import RunProgress, load_progress
from db.models import ATTRIBUTE_COLUMNS, CatalogRow, DeadLetter

#: enriched rows (with thumbnails) and dead letters shown at most; the page says when more exist
ROW_CAP = 200

#: values per attribute chart; the rest are summed into one "other values" bar
CHART_VALUES = 12

#: longest side of a thumbnail, pixels
THUMBNAIL_SIDE = 96

#: images larger than this are not downloaded for a thumbnail
THUMBNAIL_MAX_BYTES = 20 * 1024 * 1024

#: images announcing more pixels than this are not decoded (a decompression bomb stays a header)
THUMBNAIL_MAX_PIXELS = 40_000_000

#: concurrent S3 GETs while fetching thumbnails
FETCH_CONCURRENCY = 8


class UnknownRunError(LookupError):
    """There is no run with the requested id."""


@dataclass(frozen=True)
class Thumbnail:
    """A small JPEG as a ``data:`` URI, or why there is none."""

    data_uri: str | None
    problem: str | None = None


@dataclass(frozen=True)
class EnrichedImage:
    """One catalog row of the run: where the image is, its attributes and its thumbnail."""

    bucket: str
    key: str
    attributes: dict[str, str]
    attempts: int
    latency_ms: int | None
    thumbnail: Thumbnail = field(default_factory=lambda: Thumbnail(None, "not fetched"))


@dataclass(frozen=True)
class DeadLetterEntry:
    """One image given up on, with the reason and the model's last raw output (untrusted text)."""

    bucket: str
    key: str
    reason: str
    raw_output: str | None
    attempts: int


@dataclass(frozen=True, kw_only=True)
class RunReport:
    """Everything the report page shows.

    enriched_total, dead_letters_total: how many exist; ``images`` and ``dead_letters`` hold at most
    ``cap`` of each. distributions: attribute -> (value, count) pairs, most frequent first.
    mean_latency_ms: mean model time per image over the run's catalog rows.
    """

    progress: RunProgress
    images: list[EnrichedImage]
    enriched_total: int
    dead_letters: list[DeadLetterEntry]
    dead_letters_total: int
    distributions: dict[str, list[tuple[str, int]]]
    mean_latency_ms: float | None
    cap: int


def thumbnail(data: bytes, side: int = THUMBNAIL_SIDE, max_pixels: int = THUMBNAIL_MAX_PIXELS) -> Thumbnail:
    """``data`` downscaled to a JPEG of at most ``side`` pixels a side, as a data URI."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > max_pixels:
                return Thumbnail(None, f"image of {image.width}x{image.height} pixels is too large to show")
            # JPEG draft mode decodes at a reduced scale: far less work for a 96 px preview
            image.draft("RGB", (side * 2, side * 2))
            picture = ImageOps.exif_transpose(image)
            if picture.mode in ("RGBA", "LA", "P"):
                rgba = picture.convert("RGBA")
                picture = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
            picture = picture.convert("RGB")
            picture.thumbnail((side, side))
            out = io.BytesIO()
            picture.save(out, format="JPEG", quality=80)
    except Exception as error:
        # Pillow's decoders raise many kinds of errors on corrupt input; the page shows why instead
        return Thumbnail(None, f"not an image Pillow can read: {type(error).__name__}")
    return Thumbnail("data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode("ascii"))


def fetch_thumbnail(s3: Any, bucket: str, key: str, max_bytes: int = THUMBNAIL_MAX_BYTES) -> Thumbnail:
    """The thumbnail of ``s3://bucket/key``, or the reason it could not be made."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        try:
            if int(response.get("ContentLength", 0)) > max_bytes:
                return Thumbnail(None, f"object is larger than {max_bytes} bytes")
            data = body.read(max_bytes + 1)
        finally:
            body.close()
    except Exception as error:
        # a missing object, denied access or a dropped connection: the report still renders without it
        return Thumbnail(None, f"could not fetch from S3: {type(error).__name__}")
    if len(data) > max_bytes:
        return Thumbnail(None, f"object is larger than {max_bytes} bytes")
    return thumbnail(data)


def with_thumbnails(s3: Any, images: Sequence[EnrichedImage]) -> list[EnrichedImage]:
    """``images`` with their thumbnails fetched from S3 concurrently."""
    if not images:
        return []

    def fetch(image: EnrichedImage) -> EnrichedImage:
        thumb = fetch_thumbnail(s3, image.bucket, image.key)
        return EnrichedImage(image.bucket, image.key, image.attributes, image.attempts, image.latency_ms, thumb)

    with ThreadPoolExecutor(max_workers=min(FETCH_CONCURRENCY, len(images))) as pool:
        return list(pool.map(fetch, images))


def _enriched_rows(session: Session, run_id: str, cap: int) -> list[EnrichedImage]:
    table = CatalogRow.__table__
    columns = [table.c[name] for name in ATTRIBUTE_COLUMNS]
    statement = (
        select(table.c.bucket, table.c.key, table.c.attempts, table.c.latency_ms, *columns)
        .where(table.c.run_id == run_id)
        .order_by(table.c.key)
        .limit(cap)
    )
    return [
        EnrichedImage(
            row.bucket, row.key, {name: row._mapping[name] for name in ATTRIBUTE_COLUMNS}, row.attempts, row.latency_ms
        )
        for row in session.execute(statement)
    ]


def _dead_letters(session: Session, run_id: str, cap: int) -> list[DeadLetterEntry]:
    table = DeadLetter.__table__
    statement = (
        select(table.c.bucket, table.c.key, table.c.reason, table.c.raw_output, table.c.attempts)
        .where(table.c.run_id == run_id)
        .order_by(table.c.key)
        .limit(cap)
    )
    return [DeadLetterEntry(**row._mapping) for row in session.execute(statement)]


def _distribution(session: Session, run_id: str, name: str) -> list[tuple[str, int]]:
    """(value, count) of one attribute over the run's rows, the most frequent first, the tail summed."""
    table = CatalogRow.__table__
    column = table.c[name]
    statement = (
        select(column, func.count().label("n"))
        .where(table.c.run_id == run_id)
        .group_by(column)
        .order_by(func.count().desc(), column)
    )
    counts = [(str(value), int(n)) for value, n in session.execute(statement)]
    if len(counts) <= CHART_VALUES:
        return counts
    rest = counts[CHART_VALUES - 1 :]
    return [*counts[: CHART_VALUES - 1], (f"({len(rest)} other values)", sum(n for _, n in rest))]


def build_report(session: Session, s3: Any, run_id: str, *, cap: int = ROW_CAP) -> RunReport:
    """Gather run ``run_id``'s report; raises UnknownRunError when there is no such run."""
    progress = load_progress(session, run_id)
    if progress is None:
        raise UnknownRunError(run_id)
    catalog, letters = CatalogRow.__table__, DeadLetter.__table__
    enriched_total, mean_latency = session.execute(
        select(func.count(), func.avg(catalog.c.latency_ms)).where(catalog.c.run_id == run_id)
    ).one()
    dead_total = session.execute(select(func.count()).where(letters.c.run_id == run_id)).scalar_one()
    return RunReport(
        progress=progress,
        images=with_thumbnails(s3, _enriched_rows(session, run_id, cap)),
        enriched_total=enriched_total,
        dead_letters=_dead_letters(session, run_id, cap),
        dead_letters_total=dead_total,
        distributions={name: _distribution(session, run_id, name) for name in ATTRIBUTE_COLUMNS},
        mean_latency_ms=None if mean_latency is None else float(mean_latency),
        cap=cap,
    )
