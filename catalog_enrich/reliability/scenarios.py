"""The scenarios: each breaks something real while a run is in flight, then audits where every image ended.

Every scenario uses real worker processes on the suite's own servers; faults come from outside (signals,
stopped or flushed servers, a throttling proxy, deleted objects, wrong credentials) or from a fault plan
the worker was started with (poison and slow images, a corrupted model).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from catalog_enrich.reliability.audit import Tally, audit_run, sent_batches
from catalog_enrich.reliability.faults import POISON_MARKER, SLOW_MARKER, FaultPlan
from catalog_enrich.reliability.harness import Harness, Stage
from catalog_enrich.reliability.hostile_images import hostile_samples
from catalog_enrich.reliability.s3_proxy import throttling_proxy
from vlm.benchmark.memory import peak_rss_bytes


@dataclass(frozen=True)
class Scale:
    """How big the scenarios are: ``QUICK`` for the test suite, ``FULL`` for ``catalog reliability``."""

    images: int
    many_workers_images: int
    kills: int
    outage_s: float
    timeout_s: float = 600


QUICK = Scale(images=24, many_workers_images=200, kills=2, outage_s=12, timeout_s=300)
FULL = Scale(images=96, many_workers_images=2000, kills=4, outage_s=30)


@dataclass
class ScenarioResult:
    """One row of the report: the tally, how long the scenario took, and what it observed besides."""

    name: str
    tally: Tally
    seconds: float
    completed: bool
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Nothing lost, nothing duplicated, nothing invalid, and the run completed."""
        tally = self.tally
        return self.completed and tally.lost == 0 and tally.duplicated == 0 and tally.invalid == 0

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-able data."""
        return {"name": self.name, **self.tally.as_dict(), "seconds": round(self.seconds, 1)} | {
            "completed": self.completed,
            "passed": self.passed,
            "notes": self.notes,
        }


#: settings of every stage: short limits so that recovery from a lost worker takes seconds, not hours
FAST_RECOVERY = {"CATALOG_TASK_TIME_LIMIT": "20", "CATALOG_VISIBILITY_TIMEOUT": "30", "CATALOG_BATCH_SIZE": "4"}


def product_images(count: int, seed: int, marker: bytes = b"") -> dict[str, bytes]:
    """``count`` synthetic product photos keyed ``products/<id>.jpg``, each with ``marker`` appended."""
    from vlm.data.synth import synth_records

    return {f"products/{record['id']}.jpg": record["image"]["bytes"] + marker for record in synth_records(count, seed)}


def _finish(stage: Stage, run_id: str, started: float, completed: bool, **notes: Any) -> ScenarioResult:
    """Audit the run over every uploaded key and package the row; ``first_batches`` feeds the audit, not the notes."""
    first = notes.pop("first_batches", None)
    tally = audit_run(stage.database_url, run_id, stage.bucket, stage.uploaded, first)
    return ScenarioResult(stage.name, tally, time.monotonic() - started, completed, notes)


def worker_killed(harness: Harness, scale: Scale) -> ScenarioResult:
    """SIGKILL a worker mid-batch, several times during one run; its messages come back after the timeout."""
    started = time.monotonic()
    with harness.stage("worker-killed", **FAST_RECOVERY) as stage:
        # each image takes a moment, as on a busy GPU, so that a kill lands inside a batch
        images = product_images(scale.images * 2, seed=11, marker=SLOW_MARKER)
        stage.upload(images)
        plan = FaultPlan(slow_seconds=0.5)
        for _ in range(2):
            stage.start_worker(faults=plan)
        run_id = stage.enqueue(batch_size=4)
        chooser = random.Random(1)
        kills: list[float] = []

        def kill_now_and_then(elapsed: float) -> None:
            # every few seconds once images are being finished, i.e. while both workers are mid-batch
            if len(kills) >= scale.kills or (kills and elapsed - kills[-1] < 4) or _finished(stage, run_id) == 0:
                return
            victim = chooser.choice([worker for worker in stage.workers if worker.alive()])
            victim.kill()
            kills.append(elapsed)
            stage.start_worker(faults=plan)

        completed = stage.wait_for_run(run_id, timeout=scale.timeout_s, tick=kill_now_and_then)
        return _finish(stage, run_id, started, completed, kills=len(kills))


def visibility_timeout(harness: Harness, scale: Scale) -> ScenarioResult:
    """A batch outlives the visibility timeout, so a second worker runs it while the first still does."""
    started = time.monotonic()
    # the solo pool enforces no time limit: the batch really does outlive the timeout
    settings = {"CATALOG_TASK_TIME_LIMIT": "5", "CATALOG_VISIBILITY_TIMEOUT": "8", "CATALOG_BATCH_SIZE": "4"}
    with harness.stage("visibility-timeout", **settings) as stage:
        images = product_images(scale.images, seed=12)
        slow_key = next(iter(images))
        images[slow_key] += SLOW_MARKER
        stage.upload(images)
        plan = FaultPlan(slow_seconds=14)
        for _ in range(2):
            stage.start_worker(faults=plan, pool="solo")
        run_id = stage.enqueue(batch_size=4)
        completed = stage.wait_for_run(run_id, timeout=scale.timeout_s)
        return _finish(stage, run_id, started, completed)


def _mid_run_trouble(
    harness: Harness, scale: Scale, name: str, trouble: Callable[[Stage], None], *, reaper_quiet: float, **notes: Any
) -> ScenarioResult:
    """Two workers on a run; ``trouble`` strikes once, as soon as the first images are finished."""
    started = time.monotonic()
    with harness.stage(name, **FAST_RECOVERY) as stage:
        images = product_images(scale.images * 2, seed=13, marker=SLOW_MARKER)
        stage.upload(images)
        plan = FaultPlan(slow_seconds=0.3)
        for _ in range(2):
            stage.start_worker(faults=plan)
        run_id = stage.enqueue(batch_size=4)
        first = sent_batches(stage.database_url, run_id)
        struck: list[float] = []

        def strike_once(elapsed: float) -> None:
            # mid-run: with images finished, more in the queue and some in the workers' hands
            if not struck and _finished(stage, run_id) > 0:
                struck.append(elapsed)
                trouble(stage)

        completed = stage.wait_for_run(run_id, timeout=scale.timeout_s, tick=strike_once, reaper_quiet=reaper_quiet)
        return _finish(stage, run_id, started, completed, first_batches=first, **notes)


def redis_restarted(harness: Harness, scale: Scale) -> ScenarioResult:
    """Redis stops and starts again mid-run: its append-only file brings the queued messages back."""
    return _mid_run_trouble(
        harness, scale, "redis-restarted", lambda stage: harness.restart("redis", down_for=3), reaper_quiet=5
    )


def redis_wiped(harness: Harness, scale: Scale) -> ScenarioResult:
    """Every message in Redis vanishes mid-run: the reaper resends the run's unfinished items from the ledger."""
    import redis

    def flush(stage: Stage) -> None:
        redis.Redis.from_url(stage.broker_url).flushall()

    return _mid_run_trouble(harness, scale, "redis-wiped", flush, reaper_quiet=5)


def postgres_outage(harness: Harness, scale: Scale) -> ScenarioResult:
    """PostgreSQL is down for a while mid-run: batches retry with backoff and the run completes."""
    return _mid_run_trouble(
        harness,
        scale,
        "postgres-outage",
        lambda stage: harness.restart("postgres", down_for=scale.outage_s),
        reaper_quiet=10,
        down_s=scale.outage_s,
    )


def s3_deleted(harness: Harness, scale: Scale) -> ScenarioResult:
    """Objects deleted between listing and fetch are dead-lettered as gone, the others enriched."""
    started = time.monotonic()
    with harness.stage("s3-deleted", **FAST_RECOVERY) as stage:
        images = product_images(scale.images, seed=15)
        stage.upload(images)
        run_id = stage.enqueue(batch_size=4)
        gone = list(images)[::4]
        client = stage.services.s3_client()
        for key in gone:
            client.delete_object(Bucket=stage.bucket, Key=key)
        stage.start_worker()
        completed = stage.wait_for_run(run_id, timeout=scale.timeout_s)
        result = _finish(stage, run_id, started, completed, deleted=len(gone))
        result.notes["gone_dead_lettered"] = _letters_matching(stage, run_id, gone, "no longer exists")
        return result


def s3_throttled(harness: Harness, scale: Scale) -> ScenarioResult:
    """Most object reads are answered 503 SlowDown: the client and the task retry until every image is in."""
    started = time.monotonic()
    with harness.stage("s3-throttled", **FAST_RECOVERY) as stage:
        images = product_images(scale.images, seed=16)
        stage.upload(images)
        run_id = stage.enqueue(batch_size=4)
        with throttling_proxy(stage.services.s3.endpoint_url or "", share=0.6, seed=3) as proxy:
            stage.start_worker(AWS_ENDPOINT_URL_S3=proxy.url)
            completed = stage.wait_for_run(run_id, timeout=scale.timeout_s)
        return _finish(stage, run_id, started, completed, throttled_requests=proxy.throttled)


def s3_bad_credentials(harness: Harness, scale: Scale) -> ScenarioResult:
    """Workers start with a wrong secret: items fail with a clear reason, then complete once it is fixed."""
    started = time.monotonic()
    with harness.stage("s3-bad-credentials", **FAST_RECOVERY) as stage:
        images = product_images(scale.images, seed=17)
        stage.upload(images)
        run_id = stage.enqueue(batch_size=4)
        first = sent_batches(stage.database_url, run_id)
        wrong = stage.start_worker(AWS_SECRET_ACCESS_KEY="not-the-secret")
        query = "SELECT reason FROM enrichment_items WHERE run_id = :run_id AND status = 'failed'"
        reasons: list[str] = []
        deadline = time.monotonic() + scale.timeout_s
        while len(reasons) < len(images) and time.monotonic() < deadline:
            time.sleep(1)
            reasons = [reason for (reason,) in stage.query(query, run_id=run_id)]
        wrong.stop()
        # the operator fixes the credentials; the reaper resends what failed
        stage.start_worker()
        completed = stage.wait_for_run(run_id, timeout=scale.timeout_s, reaper_quiet=3)
        secret_leaked = any("not-the-secret" in reason for reason in reasons)
        return _finish(
            stage,
            run_id,
            started,
            completed,
            first_batches=first,
            failed_with_reason=len(reasons),
            reason=reasons[0] if reasons else None,
            secret_in_reasons=secret_leaked,
        )


def poison_batch(harness: Harness, scale: Scale) -> ScenarioResult:
    """An image that kills its worker on every try is given up on after N deliveries; its batch is not."""
    started = time.monotonic()
    with harness.stage("poison-batch", **FAST_RECOVERY) as stage:
        images = product_images(scale.images, seed=18)
        poison = list(images)[1]
        images[poison] += POISON_MARKER
        stage.upload(images)
        stage.start_worker(faults=FaultPlan())
        run_id = stage.enqueue(batch_size=8)
        completed = stage.wait_for_run(run_id, timeout=scale.timeout_s)
        result = _finish(stage, run_id, started, completed)
        result.notes["poison_dead_lettered"] = _letters_matching(stage, run_id, [poison], "gave up after")
        result.notes["worker_alive"] = stage.workers[0].alive()
        return result


def hostile_images(harness: Harness, scale: Scale) -> ScenarioResult:
    """Corrupt, truncated, empty, bomb, extreme and unusual files: each enriched or refused with a reason."""
    started = time.monotonic()
    with harness.stage("hostile-images", **FAST_RECOVERY) as stage:
        samples = list(hostile_samples())
        images = {f"hostile/{sample.name}": sample.data for sample in samples}
        images |= product_images(4, seed=19)
        stage.upload(images)
        worker = stage.start_worker()
        run_id = stage.enqueue(batch_size=4)
        completed = stage.wait_for_run(run_id, timeout=scale.timeout_s)
        pool = worker.pool_pids()
        peak = peak_rss_bytes(pool[0]) if pool else None
        peak_mb = peak / 2**20 if peak is not None else None
        letters = dict(stage.query("SELECT key, reason FROM dead_letters WHERE run_id = :run_id", run_id=run_id))
        wrong = [
            sample.name
            for sample in samples
            if (f"hostile/{sample.name}" in letters) != (sample.expected == "rejected")
        ]
        return _finish(
            stage,
            run_id,
            started,
            completed,
            unexpected_outcomes=wrong,
            worker_alive=worker.alive(),
            worker_peak_rss_mb=peak_mb,
            reasons={key.removeprefix("hostile/"): reason for key, reason in sorted(letters.items())},
        )


def misbehaving_model(harness: Harness, scale: Scale) -> ScenarioResult:
    """The real model's outputs corrupted on purpose: retried, then dead-lettered with the raw output."""
    started = time.monotonic()
    with harness.stage("misbehaving-model", **FAST_RECOVERY) as stage:
        images = product_images(scale.images * 2, seed=20)
        stage.upload(images)
        stage.start_worker(faults=FaultPlan(corrupt_model=True))
        run_id = stage.enqueue(batch_size=4)
        completed = stage.wait_for_run(run_id, timeout=scale.timeout_s)
        [(raw_missing,)] = stage.query(
            "SELECT count(*) FROM dead_letters WHERE run_id = :run_id AND coalesce(raw_output, '') = ''", run_id=run_id
        )
        [(retried,)] = stage.query(
            "SELECT count(*) FROM catalog WHERE run_id = :run_id AND attempts > 1", run_id=run_id
        )
        return _finish(
            stage,
            run_id,
            started,
            completed,
            enriched_after_retry=retried,
            dead_letters_without_raw_output=raw_missing,
        )


def many_workers(harness: Harness, scale: Scale) -> ScenarioResult:
    """Four workers share one run: every image accounted for exactly once."""
    started = time.monotonic()
    settings = FAST_RECOVERY | {"CATALOG_BATCH_SIZE": "16"}
    with harness.stage("many-workers", **settings) as stage:
        images = product_images(scale.many_workers_images, seed=21)
        stage.upload(images)
        for _ in range(4):
            stage.start_worker()
        run_id = stage.enqueue(batch_size=16)
        completed = stage.wait_for_run(run_id, timeout=scale.timeout_s)
        return _finish(stage, run_id, started, completed, workers=4)


def _finished(stage: Stage, run_id: str) -> int:
    """How many of the run's items are final so far."""
    from db.ledger import run_counts
    from db.models import FINAL_ITEM_STATUSES

    with stage.sessions()() as session:
        counts = run_counts(session, run_id)
    return sum(counts[status] for status in FINAL_ITEM_STATUSES)


def _letters_matching(stage: Stage, run_id: str, keys: list[str], phrase: str) -> int:
    """How many of ``keys`` have a dead letter whose reason contains ``phrase``."""
    rows = stage.query(
        "SELECT reason FROM dead_letters WHERE run_id = :run_id AND key = ANY(:keys)", run_id=run_id, keys=keys
    )
    return sum(1 for (reason,) in rows if phrase in reason)


#: every scenario, in the order the suite runs them
SCENARIOS: dict[str, Callable[[Harness, Scale], ScenarioResult]] = {
    "worker-killed": worker_killed,
    "visibility-timeout": visibility_timeout,
    "redis-restarted": redis_restarted,
    "redis-wiped": redis_wiped,
    "postgres-outage": postgres_outage,
    "s3-deleted": s3_deleted,
    "s3-throttled": s3_throttled,
    "s3-bad-credentials": s3_bad_credentials,
    "poison-batch": poison_batch,
    "hostile-images": hostile_images,
    "misbehaving-model": misbehaving_model,
    "many-workers": many_workers,
}
