"""Object keys, prefixes, run ids and model output with hostile characters, through the real database code.

Every value an outsider controls reaches SQL as a bound parameter, so quotes, comment markers,
backslashes and placeholders of every parameter style are stored and read back byte for byte. Odd keys
end to end (S3, a real worker, the catalog) are in ``test_security``, next to the worker they share.
"""

from __future__ import annotations

import json

import pytest
from live_processes import client_env, run_commands
from sqlalchemy import create_engine, func, pool, select, text
from sqlalchemy.exc import DBAPIError

from catalog_enrich.run_status import load_progress
from catalog_enrich.schema import SCHEMA_VERSION
from db.catalog import CatalogResult, enriched_etags, upsert_catalog_rows
from db.engine import make_session_factory
from db.ledger import (
    DeadLetterRecord,
    ItemOutcome,
    ItemRef,
    add_ledger_items,
    create_run,
    record_dead_letters,
    record_item_outcomes,
    run_counts,
    unfinished_items,
)
from db.models import CatalogRow, DeadLetter, EnrichmentRun

pytestmark = pytest.mark.services

#: values that break SQL assembled as text: quotes, comments, escapes, placeholders of every paramstyle
HOSTILE = [
    "it's",
    "'; DROP TABLE catalog; --",
    '"; DELETE FROM enrichment_runs; --',
    "back\\slash \\' \\\\ end\\",
    "ünïcødé ✓ 😀 \u200b",
    ":name %s %(key)s $1 ? {0}",
    "$$ $tag$ E'\\x41' */ /*",
    "line\nbreak\ttab\r",
]

#: valid attributes for rows written directly
ATTRIBUTES = {
    "product_name": "Blue Shirt",
    "product_type": "Shirts",
    "color": "Blue",
    "gender": "Men",
    "season": "Summer",
    "usage": "Casual",
}


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_values_are_stored_and_read_back_intact(database_url, hostile: str) -> None:
    sessions = make_session_factory(create_engine(database_url, poolclass=pool.NullPool))
    bucket, run_id, prefix, model = f"bucket {hostile}", f"run {hostile}", f"{hostile}/", f"model {hostile}"
    refs = [ItemRef(bucket, f"{prefix}{hostile}{n}.jpg", f"etag {hostile}", f"batch {hostile}") for n in (1, 2)]
    with sessions.begin() as session:
        create_run(session, bucket=bucket, prefix=prefix, model_version=model, run_id=run_id, parameters={"p": hostile})
        done_id, dead_id = add_ledger_items(session, run_id, refs)
    with sessions.begin() as session:
        record_item_outcomes(session, [ItemOutcome(done_id, "failed", f"reason {hostile}")])
        pending = unfinished_items(session, run_id)
    assert [(item.bucket, item.key, item.etag, item.batch_id) for item in pending] == [
        (ref.bucket, ref.key, ref.etag, ref.batch_id) for ref in refs
    ]
    result = CatalogResult(
        bucket=bucket,
        key=refs[0].key,
        attributes=ATTRIBUTES,
        raw_output=f"raw {hostile}",
        etag=refs[0].etag,
        model_version=model,
        schema_version=SCHEMA_VERSION,
        run_id=run_id,
    )
    letter = DeadLetterRecord(dead_id, run_id, bucket, refs[1].key, "e", f"why {hostile}", f"raw {hostile}", 1, model)
    with sessions.begin() as session:
        assert upsert_catalog_rows(session, [result]) == 1
        record_item_outcomes(session, [ItemOutcome(done_id, "done")])
        assert record_dead_letters(session, [letter]) == 1
    with sessions.begin() as session:
        assert enriched_etags(session, bucket, [ref.key for ref in refs] + [hostile], model) == {
            (refs[0].key, refs[0].etag)
        }
        counts = run_counts(session, run_id)
        progress = load_progress(session, run_id)
        run = session.get(EnrichmentRun, run_id)
        row = session.get(CatalogRow, (bucket, refs[0].key))
        dead = session.get(DeadLetter, dead_id)
        tables = set(session.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")))
    assert (counts["done"], counts["dead_lettered"]) == (1, 1)
    assert progress is not None and progress.run_id == run_id
    assert (run.bucket, run.prefix, run.model_version, run.parameters) == (bucket, prefix, model, {"p": hostile})
    assert (row.key, row.raw_output, row.run_id) == (refs[0].key, f"raw {hostile}", run_id)
    assert (dead.key, dead.reason, dead.raw_output) == (refs[1].key, f"why {hostile}", f"raw {hostile}")
    assert {"catalog", "enrichment_runs", "enrichment_items", "dead_letters"} <= tables


def test_nul_is_replaced_in_model_output_and_refused_in_keys(database_url) -> None:
    # PostgreSQL text cannot hold NUL: untrusted model output gets U+FFFD instead, and a key with a NUL is
    # refused outright rather than cut short at it (where it could match another key). S3 servers refuse
    # such keys too, so the producer never lists one.
    sessions = make_session_factory(create_engine(database_url, poolclass=pool.NullPool))
    with sessions.begin() as session:
        run_id = create_run(session, bucket="nul", prefix="", model_version="m")
        [item_id] = add_ledger_items(session, run_id, [ItemRef("nul", "a.jpg", "e")])
    with sessions.begin() as session:
        letter = DeadLetterRecord(item_id, run_id, "nul", "a.jpg", "e", "why\x00", "raw\x00output", 1, "m")
        record_dead_letters(session, [letter])
    with sessions.begin() as session:
        dead = session.get(DeadLetter, item_id)
        assert (dead.reason, dead.raw_output) == ("why\ufffd", "raw\ufffdoutput")
        with pytest.raises(DBAPIError):
            enriched_etags(session, "nul", ["a.jpg\x00.png"], "m")


def test_hostile_run_ids_and_prefixes_on_the_command_line(tmp_path, s3, service_env, database_url, broker_url) -> None:
    env = client_env(tmp_path, service_env, database_url, broker_url)
    s3.client.put_object(Bucket=s3.bucket, Key="shop/a.jpg", Body=b"x")
    injection = "'; DROP TABLE catalog; --"
    resume, status, dry_run = run_commands(
        [
            {"command": "enqueue", "argv": ["--resume", injection], "env": env},
            {"command": "catalog", "argv": ["status", injection], "env": env},
            {
                "command": "enqueue",
                "argv": ["--bucket", s3.bucket, "--prefix", injection, "--dry-run", "--json"],
                "env": env,
            },
        ]
    )
    assert resume["code"] == 1 and "no run" in resume["stderr"], resume
    assert status["code"] == 1 and "no run" in status["stderr"], status
    assert dry_run["code"] == 0 and json.loads(dry_run["stdout"])["listed"] == 0, dry_run
    engine = create_engine(database_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(CatalogRow)) is not None
    engine.dispose()
