"""The contract between the producer, beat and the workers: task names, queues and message shape.

Both sides import this module instead of each other, so the producer never loads the worker (or torch).
A batch message is JSON: ``{"run_id": str, "batch_id": str, "items": [{"item_id": int, "bucket": str,
"key": str, "etag": str}, ...], "sent_at": ISO 8601 time}``; ``sent_at`` is optional and readers ignore keys
they do not know.
"""

#: the Celery task that enriches one batch of image references
ENRICH_BATCH_TASK = "catalog.enrich_batch"

#: the queue GPU (or CPU inference) workers consume
INFERENCE_QUEUE = "inference"

#: the queue of control tasks (backfills, the reaper): consumed by ``catalog control-worker``, never by a GPU
CONTROL_QUEUE = "control"

#: the Celery task that enqueues one bucket prefix's new and changed images (args: bucket, prefix)
BACKFILL_TASK = "catalog.backfill"

#: the Celery task that resends the unfinished items of runs whose messages the broker lost
REAP_STALLED_RUNS_TASK = "catalog.reap_stalled_runs"
