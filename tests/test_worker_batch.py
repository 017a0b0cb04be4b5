"""One batch through the worker's code path against real PostgreSQL and S3 and the real tiny model."""

from __future__ import annotations

import uuid
from typing import ClassVar

import pytest
from sqlalchemy import func, select

from catalog_enrich.schema import target_json
from db.engine import make_session_factory
from db.ledger import ItemRef, add_ledger_items, create_run
from db.models import CatalogRow, DeadLetter, EnrichmentItem, EnrichmentRun
from db.runs import mark_enqueued
from vlm.data.synth import synth_records
from vlm.engine import Engine
from vlm.loading import load_model
from worker.batch import BatchContext, BatchMessage, InvalidMessageError, process_batch
from worker.images import decode_image

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def engine(trained_model):
    return Engine(load_model(str(trained_model.base), trained_model.adapter, quantization="none"))


@pytest.fixture(scope="module")
def sessions(database_url):
    return make_session_factory(database_url)


def upload(s3, objects: dict[str, bytes]) -> dict[str, str]:
    etags = {}
    for key, body in objects.items():
        etags[key] = s3.client.put_object(Bucket=s3.bucket, Key=key, Body=body)["ETag"].strip('"')
    return etags


def start_run(sessions, bucket: str, etags: dict[str, str], version: str) -> BatchMessage:
    with sessions.begin() as session:
        run_id = create_run(session, bucket=bucket, prefix="", model_version=version)
        refs = [ItemRef(bucket, key, etag) for key, etag in etags.items()]
        ids = add_ledger_items(session, run_id, refs)
        mark_enqueued(session, run_id)
    items = [{"item_id": i, "bucket": r.bucket, "key": r.key, "etag": r.etag} for i, r in zip(ids, refs, strict=True)]
    return BatchMessage.from_payload({"run_id": run_id, "batch_id": uuid.uuid4().hex, "items": items})


def product_images(n: int, seed: int = 21) -> dict[str, bytes]:
    return {f"shots/{r['id']} front.jpg": r["image"]["bytes"] for r in synth_records(n, seed)}


def statuses(sessions, run_id: str) -> dict[str, str]:
    with sessions() as session:
        rows = session.execute(select(EnrichmentItem.key, EnrichmentItem.status).where(EnrichmentItem.run_id == run_id))
        return dict(rows.all())


def test_batch_is_enriched_and_a_second_delivery_changes_nothing(s3, sessions, engine):
    etags = upload(s3, product_images(6))
    message = start_run(sessions, s3.bucket, etags, engine.model_version)
    context = BatchContext(engine_provider=lambda: engine, s3=s3.client, sessions=sessions)

    first = process_batch(message, context)
    assert (first.done, first.dead_lettered, first.skipped) == (6, 0, 0)
    with sessions() as session:
        rows = session.scalars(select(CatalogRow).where(CatalogRow.bucket == s3.bucket)).all()
        run = session.get(EnrichmentRun, message.run_id)
        assert run.status == "completed" and run.done == 6
    assert {row.key for row in rows} == set(etags)
    assert all(row.etag == etags[row.key] and row.model_version == engine.model_version for row in rows)
    assert all(row.attributes["product_type"] == row.product_type for row in rows)

    second = process_batch(message, context)
    assert (second.done, second.skipped) == (0, 6)
    with sessions() as session:
        count = session.scalar(select(func.count()).select_from(CatalogRow).where(CatalogRow.bucket == s3.bucket))
    assert count == 6
    assert set(statuses(sessions, message.run_id).values()) == {"done"}


def test_bad_inputs_are_dead_lettered_with_reasons_and_the_rest_enriched(s3, sessions, engine):
    objects = product_images(2)
    objects |= {"empty.jpg": b"", "notes.png": b"this is not an image", "gone.jpg": b"soon deleted"}
    etags = upload(s3, objects)
    s3.client.delete_object(Bucket=s3.bucket, Key="gone.jpg")
    message = start_run(sessions, s3.bucket, etags, engine.model_version)
    report = process_batch(message, BatchContext(engine_provider=lambda: engine, s3=s3.client, sessions=sessions))

    assert (report.done, report.dead_lettered) == (2, 3)
    with sessions() as session:
        letters = {
            d.key: d.reason for d in session.scalars(select(DeadLetter).where(DeadLetter.run_id == message.run_id))
        }
    assert "empty object" in letters["empty.jpg"]
    assert "not a decodable image" in letters["notes.png"]
    assert "no longer exists" in letters["gone.jpg"]
    final = statuses(sessions, message.run_id)
    assert sorted(final.values()) == ["dead_lettered"] * 3 + ["done"] * 2


def test_invalid_model_output_never_reaches_the_catalog(s3, sessions, trained_model):
    loaded = load_model(str(trained_model.base), trained_model.adapter, quantization="none")
    hostile = dict.fromkeys(["product_name", "product_type", "color"], "<script>alert(1)</script>")
    outputs = iter(["Sure! here you go", target_json(hostile | {"gender": "Men", "season": "Fall", "usage": "Home"})])
    misbehaving = Engine(loaded, max_attempts=2, generate=lambda m, batch, p: [next(outputs)] * len(batch))
    etags = upload(s3, product_images(1, seed=3))
    message = start_run(sessions, s3.bucket, etags, misbehaving.model_version)
    report = process_batch(message, BatchContext(engine_provider=lambda: misbehaving, s3=s3.client, sessions=sessions))

    assert (report.done, report.dead_lettered) == (0, 1)
    with sessions() as session:
        letter = session.scalars(select(DeadLetter).where(DeadLetter.run_id == message.run_id)).one()
        assert session.scalar(select(func.count()).select_from(CatalogRow).where(CatalogRow.bucket == s3.bucket)) == 0
    assert "after 2 attempts" in letter.reason and "U+003C" in letter.reason
    assert letter.raw_output.startswith('{"product_name":"<script>')


def test_a_batch_redelivered_too_often_is_dead_lettered_without_running(s3, sessions, engine):
    etags = upload(s3, product_images(2, seed=4))
    message = start_run(sessions, s3.bucket, etags, engine.model_version)

    def crashing_engine():
        raise SystemExit("worker died")  # what a crash mid-batch looks like from the ledger's side

    context = BatchContext(engine_provider=crashing_engine, s3=s3.client, sessions=sessions, max_deliveries=2)
    for _ in range(2):
        with pytest.raises(SystemExit):
            process_batch(message, context)
    report = process_batch(
        message, BatchContext(engine_provider=lambda: engine, s3=s3.client, sessions=sessions, max_deliveries=2)
    )
    # the redelivered batch went one image at a time: the first image took the crashes (deliveries 1 and 2,
    # then given up on), the second was claimed once with the batch and is enriched now
    assert (report.done, report.dead_lettered) == (1, 1)
    final = statuses(sessions, message.run_id)
    assert sorted(final.values()) == ["dead_lettered", "done"]
    with sessions() as session:
        letter = session.scalars(select(DeadLetter).where(DeadLetter.run_id == message.run_id)).one()
    assert letter.key == message.items[0].key and "gave up after 2 deliveries" in letter.reason


def test_a_poison_image_does_not_take_its_batch_down(s3, sessions, engine):
    etags = upload(s3, product_images(4, seed=5))
    message = start_run(sessions, s3.bucket, etags, engine.model_version)
    poison = message.items[1].key

    class PoisonEngine:
        """Crashes (as a killed worker would) on any batch that holds the poison image."""

        model_version = engine.model_version
        seen: ClassVar[list[int]] = []

        def enrich(self, images):
            self.seen.append(len(images))
            if any(image.info.get("poison") for image in images):
                raise SystemExit("segfault")
            return engine.enrich(images)

    def decode_marking(data, limits=None):
        image = decode_image(data, limits)
        image.info["poison"] = data == poison_bytes
        return image

    poison_bytes = s3.client.get_object(Bucket=s3.bucket, Key=poison)["Body"].read()
    context = BatchContext(engine_provider=PoisonEngine, s3=s3.client, sessions=sessions, max_deliveries=3)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("worker.batch.decode_image", decode_marking)
        # deliveries 1 to 3 crash (the first with the whole batch), the fourth gives the poison up
        for _ in range(3):
            with pytest.raises(SystemExit):
                process_batch(message, context)
        report = process_batch(message, context)
    final = statuses(sessions, message.run_id)
    assert report.dead_lettered == 1 and PoisonEngine.seen[0] == 4 and set(PoisonEngine.seen[1:]) == {1}
    assert sorted(final.values()) == ["dead_lettered"] + ["done"] * 3
    assert final[poison] == "dead_lettered"


def test_malformed_messages_are_refused_clearly():
    with pytest.raises(InvalidMessageError, match="malformed batch message"):
        BatchMessage.from_payload({"run_id": "r", "items": [{"key": "a"}]})
    with pytest.raises(InvalidMessageError):
        BatchMessage.from_payload("pickle me")


def test_refused_s3_credentials_stop_the_batch_and_decide_nothing(s3, sessions, engine, service_env):
    import boto3

    from worker.fetch import S3AccessError

    etags = upload(s3, product_images(1, seed=6))
    message = start_run(sessions, s3.bucket, etags, engine.model_version)
    wrong_secret = boto3.client(
        "s3",
        endpoint_url=service_env["AWS_ENDPOINT_URL_S3"],
        aws_access_key_id=service_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key="not-the-secret",
        region_name="us-east-1",
    )
    with pytest.raises(S3AccessError, match=r"SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId"):
        process_batch(message, BatchContext(engine_provider=lambda: engine, s3=wrong_secret, sessions=sessions))
    # nothing was decided for the item: it stays queued until the task records the refusal
    assert set(statuses(sessions, message.run_id).values()) == {"queued"}
