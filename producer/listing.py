"""Listing the images of a bucket prefix, one page at a time, so memory stays flat for any bucket size."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: file extensions treated as images (compared case-insensitively)
IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"})

#: keys per ListObjectsV2 page; 1000 is the most S3 returns
PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One image object as listed: its key, its ETag without quotes, and when it was last written."""

    key: str
    etag: str
    last_modified: datetime


def is_image_key(key: str) -> bool:
    """True when ``key`` names a file (not a ``folder/`` marker) with an image extension."""
    if key.endswith("/"):
        return False
    name = key.rsplit("/", 1)[-1]
    _, dot, extension = name.rpartition(".")
    return bool(dot) and extension.lower() in IMAGE_EXTENSIONS


def _image(entry: dict[str, Any], since: datetime | None) -> ListedObject | None:
    """The listing entry as a ListedObject, or None when it is not an image modified at or after ``since``."""
    if not is_image_key(entry["Key"]):
        return None
    if since is not None and entry["LastModified"] < since:
        return None
    # S3 quotes ETags; the worker stores them unquoted, and dedupe compares the two
    return ListedObject(entry["Key"], entry["ETag"].strip('"'), entry["LastModified"])


def list_image_pages(
    client: Any,
    bucket: str,
    *,
    prefix: str = "",
    since: datetime | None = None,
    limit: int | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[tuple[int, list[ListedObject]]]:
    """Yield ``(objects seen, images kept)`` per listing page; stops once ``limit`` images were kept.

    ``since`` must be timezone-aware (S3 reports LastModified in UTC). Pages may be empty when nothing on
    them is an image; they are still yielded so callers can show listing progress.
    """
    paginator = client.get_paginator("list_objects_v2")
    # no EncodingType here: botocore then asks for URL-encoded keys itself (XML cannot carry every
    # character a key may hold) and decodes them; naming it would hand back "a b.jpg" as "a%20b.jpg"
    pages = paginator.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size})
    kept = 0
    for page in pages:
        entries = page.get("Contents", [])
        images = [image for entry in entries if (image := _image(entry, since)) is not None]
        if limit is not None and kept + len(images) >= limit:
            yield len(entries), images[: limit - kept]
            return
        kept += len(images)
        yield len(entries), images
