"""Checks made before anything is recorded: the database, the broker and the bucket must all answer.

Each failure becomes a ProducerError whose message is one line saying what is wrong and what to check.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from celery import Celery
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from catalog_enrich.masking import mask_secrets, mask_url

#: seconds to wait for the broker before calling it unreachable
BROKER_CHECK_TIMEOUT = 5.0


class ProducerError(RuntimeError):
    """A problem the user must fix (unreachable service, missing bucket, unknown run); one line of text."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's text (driver errors carry several), or its type when empty.

    Passwords in it are masked: client libraries quote the URL they failed on, credentials included.
    """
    lines = str(error).strip().splitlines()
    return mask_secrets(lines[0]) if lines else type(error).__name__


def check_database(engine: Engine) -> None:
    """Raise ProducerError unless the database answers and has the enrichment tables."""
    url = mask_url(engine.url.render_as_string(hide_password=False))
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1 FROM enrichment_runs LIMIT 1"))
    except SQLAlchemyError as error:
        cause = first_line(getattr(error, "orig", None) or error)
        if "enrichment_runs" in cause:
            raise ProducerError(f"database {url} has no catalog tables: run `catalog migrate` first") from error
        raise ProducerError(f"cannot use database {url}: {cause}") from error


def check_broker(app: Celery, timeout: float = BROKER_CHECK_TIMEOUT) -> None:
    """Raise ProducerError unless the broker accepts a connection within ``timeout`` seconds."""
    url = mask_url(app.conf.broker_url)
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
    except Exception as error:
        # kombu wraps transport errors differently per version and transport; any failure here means the
        # same thing to the user
        raise ProducerError(f"cannot reach broker {url}: {first_line(error)}") from error


def check_bucket(client: Any, bucket: str, endpoint: str | None) -> None:
    """Raise ProducerError unless ``bucket`` exists and the credentials may read it."""
    where = mask_url(endpoint) if endpoint else "AWS S3"
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as error:
        code = str(error.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket"):
            raise ProducerError(f"bucket {bucket!r} does not exist at {where}") from error
        if code in ("403", "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId"):
            raise ProducerError(
                f"access to bucket {bucket!r} at {where} denied: check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            ) from error
        raise ProducerError(f"cannot read bucket {bucket!r} at {where}: {first_line(error)}") from error
    except BotoCoreError as error:
        raise ProducerError(f"cannot reach S3 at {where}: {first_line(error)}") from error
