"""The ``enqueue`` command once parsed: check the services, enqueue or resume, follow, report.

Exit status: 0 when the run was enqueued (and, with ``--wait``, every item reached a final state, done or
dead-lettered; dead letters are reported, not treated as a failure of the run), 1 on an error or a run
that ended failed or cancelled, 3 when ``--wait`` timed out first.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime

import boto3

from catalog_enrich.settings import Settings
from db.engine import make_engine, make_session_factory
from producer.broker import producer_app
from producer.following import FollowResult, follow_run
from producer.listing import PAGE_SIZE
from producer.preflight import check_broker, check_bucket, check_database
from producer.resume import resume_run
from producer.sending import EnqueueRequest, RunSummary, enqueue_run
from producer.version import producer_model_version

#: exit statuses (2 is argparse's for a bad command line)
EXIT_OK, EXIT_ERROR, EXIT_TIMEOUT = 0, 1, 3


@dataclass(frozen=True, kw_only=True)
class CommandOptions:
    """The parsed command line; ``batch_size`` None means the CATALOG_BATCH_SIZE setting."""

    bucket: str | None = None
    prefix: str = ""
    since: datetime | None = None
    limit: int | None = None
    batch_size: int | None = None
    force: bool = False
    dry_run: bool = False
    resume: str | None = None
    wait: bool = False
    timeout: float | None = None
    json: bool = False
    page_size: int = PAGE_SIZE


def run_command(options: CommandOptions, settings: Settings) -> int:
    """Run the command; prints the summary on stdout and returns the exit status."""
    engine = make_engine(settings.require_database_url())
    try:
        check_database(engine)
        sessions = make_session_factory(engine)
        app = None if options.dry_run else producer_app(settings)
        if app is not None:
            check_broker(app)
        batch_size = options.batch_size or settings.batch_size
        progress = not options.json or sys.stderr.isatty()
        if options.resume:
            assert app is not None
            summary = resume_run(options.resume, sessions=sessions, app=app, batch_size=batch_size, progress=progress)
        else:
            s3 = boto3.client("s3", **settings.s3.client_kwargs())
            assert options.bucket is not None
            check_bucket(s3, options.bucket, settings.s3.endpoint_url)
            summary = enqueue_run(
                _request(options, batch_size),
                s3=s3,
                sessions=sessions,
                app=app,
                model_version=producer_model_version(settings, s3),
                progress=progress,
            )
        followed = None
        if options.wait and summary.run_id is not None:
            followed = follow_run(sessions, summary.run_id, timeout=options.timeout, progress=progress)
    finally:
        engine.dispose()
    _report(summary, followed, as_json=options.json)
    return _exit_status(followed)


def _request(options: CommandOptions, batch_size: int) -> EnqueueRequest:
    """The enqueue request the options describe."""
    assert options.bucket is not None
    return EnqueueRequest(
        bucket=options.bucket,
        prefix=options.prefix,
        since=options.since,
        limit=options.limit,
        batch_size=batch_size,
        force=options.force,
        dry_run=options.dry_run,
        page_size=options.page_size,
    )


def _exit_status(followed: FollowResult | None) -> int:
    """The exit status for how following ended (0 when not following)."""
    if followed is None:
        return EXIT_OK
    if followed.timed_out:
        print(f"enqueue: gave up waiting: the run is still {followed.status}", file=sys.stderr)
        return EXIT_TIMEOUT
    return EXIT_OK if followed.status == "completed" else EXIT_ERROR


def _report(summary: RunSummary, followed: FollowResult | None, *, as_json: bool) -> None:
    """Print the summary: one JSON object, or a few readable lines."""
    if as_json:
        print(json.dumps(summary.as_dict() | (followed.as_dict() if followed else {})))
        return
    batches = f"{summary.enqueued} images in {summary.batches} batches"
    if summary.dry_run:
        print(f"dry run: would enqueue {batches} ({summary.listed} listed, {summary.skipped} already enriched)")
    elif summary.resumed:
        print(f"run {summary.run_id}: resent {batches}")
    else:
        print(
            f"run {summary.run_id}: listed {summary.listed}, skipped {summary.skipped} already enriched, "
            f"enqueued {batches}"
        )
    if followed is not None:
        counts = followed.counts
        print(
            f"run {summary.run_id} {followed.status}: {counts.get('done', 0)} done, "
            f"{counts.get('failed', 0)} failed, {counts.get('dead_lettered', 0)} dead-lettered"
        )
