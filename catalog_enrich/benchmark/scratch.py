"""Scratch resources for measurements: a throw-away database, a Redis database of its own, filled buckets.

Measurements never touch the real catalog: each gets a fresh database on the configured server
(migrated, dropped afterwards) and an empty logical Redis database, and the environment its
subprocesses (``enqueue``, ``catalog worker``) run with points at nothing else.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from catalog_enrich.settings import S3Settings

#: threads uploading objects; the local S3 server answers small puts faster with several in flight
UPLOAD_THREADS = 16

#: Redis databases tried for a scratch database, from the top: test runs claim theirs from 1 upwards
REDIS_DATABASES = range(15, 0, -1)


@dataclass(frozen=True)
class Services:
    """Where the servers are.

    database_url: a PostgreSQL URL whose user may create databases (its database is left alone).
    broker_url: a Redis URL (its database number is ignored). s3: the S3 endpoint and credentials.
    """

    database_url: str
    broker_url: str
    s3: S3Settings

    def s3_client(self) -> Any:
        """A boto3 S3 client with many pooled connections (uploads run in threads)."""
        import boto3
        from botocore.config import Config

        config = Config(max_pool_connections=UPLOAD_THREADS * 2, retries={"max_attempts": 5, "mode": "standard"})
        return boto3.client("s3", config=config, **self.s3.client_kwargs())


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """The URL of a new database, migrated to the latest revision, dropped when the block ends."""
    from sqlalchemy import create_engine, make_url, pool, text

    import migrations

    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    with admin.connect() as connection:
        # CREATE/DROP DATABASE take no bound parameters; the name is generated above from a uuid, never input
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrations.upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def scratch_redis(base_url: str) -> Iterator[str]:
    """The URL of an empty logical Redis database claimed for the block, flushed before and after."""
    import redis

    client = redis.Redis.from_url(base_url)
    claimed = None
    for number in REDIS_DATABASES:
        # the claim lives in database 0 and expires on its own should this process die
        if client.set(f"catalog-bench:db:{number}", os.getpid(), nx=True, ex=3600):
            if redis.Redis.from_url(_with_database(base_url, number)).dbsize() == 0:
                claimed = number
                break
            client.delete(f"catalog-bench:db:{number}")
    if claimed is None:
        raise RuntimeError("no empty Redis database (1-15) is free for the benchmark")
    url = _with_database(base_url, claimed)
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()
        client.delete(f"catalog-bench:db:{claimed}")
        client.close()


def _with_database(url: str, number: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


def flush_redis(url: str) -> None:
    """Empty the Redis database of ``url``."""
    import redis

    redis.Redis.from_url(url).flushdb()


def count_objects(client: Any, bucket: str) -> int | None:
    """How many objects ``bucket`` holds, or None when there is no such bucket."""
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError:
        return None
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sum(page.get("KeyCount", len(page.get("Contents", []))) for page in pages)


def fill_bucket(client: Any, bucket: str, objects: Iterable[tuple[str, bytes]]) -> int:
    """Create ``bucket`` if needed and put every ``(key, body)`` in it from a pool of threads."""
    if count_objects(client, bucket) is None:
        client.create_bucket(Bucket=bucket)

    def put(item: tuple[str, bytes]) -> None:
        client.put_object(Bucket=bucket, Key=item[0], Body=item[1])

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        return sum(1 for _ in pool.map(put, objects))


def ensure_bucket(client: Any, bucket: str, expected: int, objects: Callable[[], Iterable[tuple[str, bytes]]]) -> bool:
    """Make ``bucket`` hold exactly the ``expected`` objects; True when it had to be (re)filled.

    A bucket left by an earlier run with the right count is reused: uploading 100,000 objects is slower
    than what is measured with them.
    """
    if count_objects(client, bucket) == expected:
        return False
    empty_bucket(client, bucket)
    fill_bucket(client, bucket, objects())
    return True


def empty_bucket(client: Any, bucket: str) -> None:
    """Delete every object of ``bucket`` (if it exists), a thousand per request."""
    if count_objects(client, bucket) is None:
        return
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def remove_bucket(client: Any, bucket: str) -> None:
    """Delete ``bucket`` and everything in it, if it exists; a server keeps storage for every bucket it has."""
    if count_objects(client, bucket) is None:
        return
    empty_bucket(client, bucket)
    client.delete_bucket(Bucket=bucket)


def subprocess_env(services: Services, database_url: str, broker_url: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of a measured subprocess: this one's, with every service variable replaced."""
    keep = {name: value for name, value in os.environ.items() if not name.startswith(("CATALOG_", "AWS_"))}
    s3 = services.s3
    variables = {
        "CATALOG_DATABASE_URL": database_url,
        "CATALOG_BROKER_URL": broker_url,
        "AWS_DEFAULT_REGION": s3.region,
    }
    if s3.endpoint_url:
        variables["AWS_ENDPOINT_URL_S3"] = s3.endpoint_url
    if s3.access_key_id and s3.secret_access_key:
        variables["AWS_ACCESS_KEY_ID"] = s3.access_key_id
        variables["AWS_SECRET_ACCESS_KEY"] = s3.secret_access_key
    for name in ("AWS_CA_BUNDLE", "CATALOG_HOME"):
        if os.environ.get(name):
            variables[name] = os.environ[name]
    return keep | variables | dict(extra)
