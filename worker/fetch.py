"""Fetching a batch's images from S3 concurrently, with a size cap, telling lasting from passing failures."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

#: S3 error codes that mean "this object cannot be had", so retrying would change nothing
LASTING_CODES = {"NoSuchKey", "404", "NotFound", "InvalidObjectState", "NoSuchBucket"}

#: concurrent GETs per batch; S3 latency, not bandwidth, dominates for small product images
FETCH_CONCURRENCY = 16


#: S3 error codes that mean the worker's own credentials or permissions are wrong: every object would fail
ACCESS_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "403",
}


class TransientFetchError(RuntimeError):
    """S3 failed in a way that may pass (throttling, a dropped connection, a server restarting)."""


class S3AccessError(RuntimeError):
    """S3 refused the worker's credentials: nothing can be fetched until an operator fixes them."""


@dataclass(frozen=True)
class ObjectRef:
    """An object to fetch and the ETag the producer listed."""

    bucket: str
    key: str
    etag: str


@dataclass(frozen=True)
class FetchedObject:
    """The bytes of one object and the ETag they have, or the lasting reason there are none."""

    ref: ObjectRef
    data: bytes | None
    etag: str
    reason: str | None = None


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def fetch_object(client: Any, ref: ObjectRef, max_bytes: int) -> FetchedObject:
    """One object; raises TransientFetchError for failures worth retrying."""
    try:
        response = client.get_object(Bucket=ref.bucket, Key=ref.key)
    except ClientError as error:
        code = _error_code(error)
        if code in LASTING_CODES:
            return FetchedObject(ref, None, ref.etag, "object no longer exists in S3 (deleted after listing)")
        if code in ACCESS_CODES:
            raise S3AccessError(f"S3 refused the worker's credentials ({code}) for bucket {ref.bucket}") from error
        raise TransientFetchError(f"S3 GET s3://{ref.bucket}/{ref.key} failed: {code}") from error
    except BotoCoreError as error:
        raise TransientFetchError(f"S3 GET s3://{ref.bucket}/{ref.key} failed: {type(error).__name__}") from error
    etag = str(response.get("ETag", ref.etag)).strip('"')
    body = response["Body"]
    try:
        if int(response.get("ContentLength", 0)) > max_bytes:
            return FetchedObject(ref, None, etag, f"object is larger than the {max_bytes} byte limit")
        # read one byte past the cap so a lying Content-Length cannot make us hold an unbounded body
        data = body.read(max_bytes + 1)
    except BotoCoreError as error:
        raise TransientFetchError(f"S3 read of s3://{ref.bucket}/{ref.key} failed: {error}") from error
    finally:
        body.close()
    if len(data) > max_bytes:
        return FetchedObject(ref, None, etag, f"object is larger than the {max_bytes} byte limit")
    return FetchedObject(ref, data, etag)


def fetch_objects(client: Any, refs: Sequence[ObjectRef], *, max_bytes: int) -> list[FetchedObject]:
    """Every object of a batch, in order; raises TransientFetchError if any fetch may succeed later and
    S3AccessError if the credentials are refused."""
    if not refs:
        return []
    with ThreadPoolExecutor(max_workers=min(FETCH_CONCURRENCY, len(refs))) as pool:
        return list(pool.map(lambda ref: fetch_object(client, ref, max_bytes), refs))
