"""Security, tested against the real servers and real worker processes.

JSON-only messages (a pickle from the broker is refused and nothing in it runs), no credentials in what
commands print, in worker logs or in the ledger, object keys that look URL-encoded or hold quotes kept
exact from S3 to the catalog, and Flower never reachable without basic auth in docker-compose. Hostile
values in SQL are in ``test_object_keys``. The worker tests share one worker per module (each start
loads the model), so they are here together.
"""

from __future__ import annotations

import json
import os
import pickle
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from live_processes import (
    ROOT,
    Worker,
    client_env,
    enqueue,
    put_images,
    run_commands,
    running_worker,
    service_credentials,
    wait_for,
    worker_env,
)
from sqlalchemy import create_engine, make_url, pool, select

from catalog_enrich.masking import mask_secrets, mask_url
from catalog_enrich.messages import ENRICH_BATCH_TASK, INFERENCE_QUEUE
from catalog_enrich.settings import Settings, SettingsError
from db.models import CatalogRow, DeadLetter, EnrichmentItem

#: a password no real service uses, so finding it anywhere in output can only mean it leaked
LEAKED = "Leak3d-" + secrets.token_hex(8)

#: keys that break naive URL, shell or SQL handling; the URL-encoded look-alikes are distinct objects
ODD_KEYS = [
    "summer 2024/Ünïcødé 'quoted' \"dq\" #1 ?x=1 100% a+b.jpg",
    "a%20b.jpg",
    "a+b.jpg",
    "a b.jpg",
    "a%2Bb.jpg",
    "a%252B.jpg",
    "semi;colon & amp=1.jpg",
    "it's'; DROP TABLE catalog; --.jpg",
    "emoji 😀/tab\there.jpg",
]


# ---------------------------------------------------------------------------------------------------
# credentials: masking


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://catalog:{LEAKED}@db:5432/catalog",
        f"redis://:{LEAKED}@redis:6379/0",
        f"redis://ops:{LEAKED}@redis:6379/0",
        f"postgresql+psycopg://catalog:{LEAKED}/x?y#z@db:5432/catalog",
        f"postgresql+psycopg://catalog:{LEAKED}@with@at@db:5432/catalog",
        f"postgresql+psycopg://catalog:{LEAKED}[@db:5432/catalog",
        f"postgresql+psycopg://catalog:pass word {LEAKED}@db/catalog",
        f"postgresql+psycopg://catalog@db/catalog?sslmode=require&password={LEAKED}",
        f"redis://redis:6379/0?password={LEAKED}",
        f"host=db password={LEAKED} dbname=catalog",
    ],
)
def test_mask_url_hides_every_password(url: str) -> None:
    masked = mask_url(url)
    assert LEAKED not in masked
    assert "***" in masked


def test_mask_url_keeps_what_locates_the_server() -> None:
    assert mask_url("postgresql+psycopg://u:pw@db:5432/catalog") == "postgresql+psycopg://u:***@db:5432/catalog"
    assert mask_url("redis://:pw@redis:6379/0") == "redis://:***@redis:6379/0"
    assert mask_url("redis://redis:6379/0") == "redis://redis:6379/0"
    assert mask_url("http://127.0.0.1:18333") == "http://127.0.0.1:18333"


def test_mask_secrets_finds_urls_inside_error_messages() -> None:
    message = f'Could not connect to the endpoint URL: "http://ops:{LEAKED}@s3:9000/bucket" (redis://:{LEAKED}@r:1/0)'
    masked = mask_secrets(message)
    assert LEAKED not in masked
    assert "http://ops:***@s3:9000/bucket" in masked and "redis://:***@r:1/0" in masked


def test_describe_and_settings_errors_mask_passwords(tmp_path: Path) -> None:
    environ = {
        "CATALOG_HOME": str(tmp_path),
        "CATALOG_DATABASE_URL": f"postgresql://catalog:{LEAKED}@db:5432/catalog",
        "CATALOG_BROKER_URL": f"redis://:{LEAKED}@redis:6379/0",
        "AWS_ENDPOINT_URL_S3": f"http://ops:{LEAKED}@s3:9000",
        "AWS_ACCESS_KEY_ID": "catalog",
        "AWS_SECRET_ACCESS_KEY": LEAKED,
    }
    described = Settings.from_env(environ).describe()
    assert LEAKED not in described
    assert "catalog:***@db:5432" in described and "s3 secret access key: set (hidden)" in described

    broken = environ | {
        "CATALOG_DATABASE_URL": f"mysql://catalog:{LEAKED}@db/catalog",
        "CATALOG_BROKER_URL": f"redis://:{LEAKED}#@redis:6379/0",
        "AWS_ENDPOINT_URL_S3": f"ftp://ops:{LEAKED}[@s3",
    }
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(broken)
    assert LEAKED not in str(refused.value)
    assert str(refused.value).count("\n") == 3, "one line per problem"


# ---------------------------------------------------------------------------------------------------
# credentials: the error paths of the commands, against the real servers


@pytest.mark.services
def test_commands_never_print_credentials(tmp_path, s3, service_env, database_url, broker_url) -> None:
    good = client_env(tmp_path, service_env, database_url, broker_url)
    admin = make_url(database_url)
    wrong_password = admin.set(password=LEAKED).render_as_string(hide_password=False)
    unreachable = admin.set(password=LEAKED, port=1).render_as_string(hide_password=False)
    redis = urlsplit(broker_url)
    enqueue_failures = {
        "wrong database password": {"CATALOG_DATABASE_URL": wrong_password},
        "unreachable database": {"CATALOG_DATABASE_URL": unreachable},
        "password in the query": {"CATALOG_DATABASE_URL": f"postgresql://u@127.0.0.1:1/catalog?password={LEAKED}"},
        "unescaped password": {"CATALOG_DATABASE_URL": f"postgresql://u:{LEAKED}/x?y@127.0.0.1:1/catalog"},
        "wrong broker password": {"CATALOG_BROKER_URL": f"redis://:{LEAKED}@{redis.hostname}:{redis.port}/0"},
        "unreachable broker": {"CATALOG_BROKER_URL": f"redis://:{LEAKED}@127.0.0.1:1/0"},
        "wrong S3 secret": {"AWS_SECRET_ACCESS_KEY": LEAKED},
        "S3 endpoint with credentials": {"AWS_ENDPOINT_URL_S3": f"http://ops:{LEAKED}@127.0.0.1:1"},
    }
    cases = {name: ("enqueue", ["--bucket", s3.bucket, "--json"], env) for name, env in enqueue_failures.items()}
    report = ["report", "run", "--out", str(tmp_path / "report.html")]
    for label, url in (("a wrong password", wrong_password), ("an unreachable database", unreachable)):
        for argv in (["status"], ["status", "run", "--json"], report):
            cases[f"catalog {argv[0]} with {label}"] = ("catalog", argv, {"CATALOG_DATABASE_URL": url})
    results = run_commands(
        [{"command": command, "argv": argv, "env": good | changes} for command, argv, changes in cases.values()]
    )
    hidden = [LEAKED, *service_credentials(service_env, database_url, broker_url)]
    for name, result in zip(cases, results, strict=True):
        output = result["stdout"] + result["stderr"]
        assert result["code"] == 1 and result["stderr"].strip(), (name, output)
        assert not [secret for secret in hidden if secret in output], f"{name} printed a credential: {output}"


@pytest.mark.services
@pytest.mark.slow
def test_a_worker_with_a_wrong_s3_secret_keeps_every_credential_out_of_logs_and_ledger(
    tmp_path, s3, service_env, database_url, broker_url, trained_model
) -> None:
    # this test comes first of the worker tests: its worker must be the only one consuming the queue, and
    # the module's shared worker starts only when the first test that needs it runs
    put_images(s3.client, s3.bucket, ["shop/one.jpg", "shop/two.jpg"], seed=5)
    producer = client_env(tmp_path, service_env, database_url, broker_url)
    env = worker_env(producer, trained_model) | {"AWS_SECRET_ACCESS_KEY": LEAKED}
    engine = create_engine(database_url, poolclass=pool.NullPool)
    items = EnrichmentItem.__table__
    with running_worker(env, tmp_path / "worker.log") as worker:
        run_id = enqueue(producer, "--bucket", s3.bucket)["run_id"]
        of_run = select(items.c.status, items.c.reason).where(items.c.run_id == run_id)

        def settled() -> bool:
            with engine.connect() as connection:
                return all(row.status != "queued" for row in connection.execute(of_run))

        wait_for(settled, timeout=120, what="the worker to record the refused credentials")
        assert worker.process.poll() is None, "the worker died"
    with engine.connect() as connection:
        ledger = connection.execute(of_run).all()
        letters = connection.scalars(select(DeadLetter.__table__.c.reason)).all()
    engine.dispose()
    assert len(ledger) == 2 and all(row.status in ("failed", "dead_lettered") and row.reason for row in ledger)
    reasons = [row.reason for row in ledger] + list(letters)
    log = worker.log_text()
    assert "SignatureDoesNotMatch" in log, "the log says what S3 answered"
    for secret in [LEAKED, *service_credentials(service_env, database_url, broker_url)]:
        assert secret not in log, f"the worker log holds a credential:\n{log[-3000:]}"
        assert not [reason for reason in reasons if secret in reason], reasons


# ---------------------------------------------------------------------------------------------------
# JSON-only serialization


def test_producer_and_worker_accept_json_only(tmp_path: Path) -> None:
    from producer.broker import producer_app
    from worker.app import celery_config

    settings = Settings.from_env(
        {"CATALOG_HOME": str(tmp_path), "CATALOG_BROKER_URL": "redis://127.0.0.1:1/0", "AWS_ACCESS_KEY_ID": "x"}
    )
    worker_config = celery_config(settings)
    for config in (worker_config, producer_app(settings).conf):
        assert list(config["accept_content"]) == ["json"]
        assert config["task_serializer"] == config["result_serializer"] == config["event_serializer"] == "json"
    # unset, Celery uses accept_content for results too
    assert list(worker_config.get("result_accept_content") or ["json"]) == ["json"]


@pytest.fixture(scope="module")
def worker(tmp_path_factory, service_env, database_url, broker_url, trained_model) -> Iterator[Worker]:
    """A healthy worker shared by the tests below (starting one loads the model)."""
    home = tmp_path_factory.mktemp("worker")
    env = worker_env(client_env(home, service_env, database_url, broker_url), trained_model)
    with running_worker(env, home / "worker.log") as running:
        yield running
        print(running.log_text()[-3000:])


class CreatesMarker:
    """Unpickling this creates ``path``: the proof that a pickle from the broker was deserialized."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (Path.touch, (self.path,))


def publish_pickle(broker_url: str, marker: Path) -> None:
    """Send a pickled ``catalog.enrich_batch`` message to the inference queue, as anyone who can write to
    Redis could."""
    from celery import Celery

    attacker = Celery("attacker", set_as_current=False)
    attacker.conf.update(broker_url=broker_url, task_serializer="pickle", accept_content=["pickle"])
    try:
        attacker.send_task(ENRICH_BATCH_TASK, kwargs={"message": CreatesMarker(marker)}, queue=INFERENCE_QUEUE)
    finally:
        attacker.close()


@pytest.mark.services
@pytest.mark.slow
def test_the_worker_refuses_a_pickle_and_keeps_working(tmp_path, s3, worker, broker_url) -> None:
    import redis

    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(CreatesMarker(proof)))
    assert proof.exists(), "the payload works wherever a pickle is loaded"

    marker = tmp_path / "pickle-was-loaded"
    publish_pickle(broker_url, marker)
    put_images(s3.client, s3.bucket, ["after/valid.jpg"], seed=7)
    # the queue is first in, first out and the worker takes one message at a time: once this JSON batch is
    # done, the pickle sent before it has been dealt with
    summary = enqueue(worker.env, "--bucket", s3.bucket, "--wait", "--timeout", "180")

    assert not marker.exists(), "the worker deserialized a pickle from the broker"
    assert worker.process.poll() is None, "the worker died"
    assert (summary["status"], summary["done"]) == ("completed", 1)
    assert "untrusted content of type pickle" in worker.log_text()
    client = redis.Redis.from_url(broker_url)
    assert client.llen(INFERENCE_QUEUE) == 0, "the refused message went back to the queue"
    client.close()


@pytest.mark.services
@pytest.mark.slow
def test_the_configuration_a_worker_reports_holds_no_credentials(worker, service_env, database_url, broker_url) -> None:
    # what Flower's Config tab and `celery inspect conf` show: anyone who can reach Flower or the broker
    from celery import Celery

    client = Celery("inspector", set_as_current=False, broker=broker_url)
    try:
        replies = client.control.inspect(timeout=30, limit=1).conf(with_defaults=False)
    finally:
        client.close()
    assert replies, "the worker did not answer"
    shown = json.dumps(replies, default=str)
    assert "catalog_settings" in shown
    assert not [secret for secret in service_credentials(service_env, database_url, broker_url) if secret in shown]


# ---------------------------------------------------------------------------------------------------
# object keys that break naive URL handling, end to end


@pytest.mark.services
@pytest.mark.slow
def test_odd_object_keys_are_enriched_exactly_once_under_their_own_key(s3, worker, database_url) -> None:
    put_images(s3.client, s3.bucket, ODD_KEYS, seed=11)
    etags = {key: s3.client.head_object(Bucket=s3.bucket, Key=key)["ETag"].strip('"') for key in ODD_KEYS}
    assert len(set(etags.values())) == len(ODD_KEYS), "the look-alike keys are distinct objects"

    first = enqueue(worker.env, "--bucket", s3.bucket, "--wait", "--timeout", "240")
    assert (first["listed"], first["enqueued"], first["status"]) == (len(ODD_KEYS), len(ODD_KEYS), "completed")
    assert (first["done"], first["dead_lettered"]) == (len(ODD_KEYS), 0)
    catalog = CatalogRow.__table__
    engine = create_engine(database_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        rows = connection.execute(select(catalog.c.key, catalog.c.etag).where(catalog.c.bucket == s3.bucket)).all()
    engine.dispose()
    # every key exactly once, byte for byte, enriched from its own object (the ETag of a look-alike differs)
    assert sorted(row.key for row in rows) == sorted(ODD_KEYS)
    assert {row.key: row.etag for row in rows} == etags

    # again: everything is skipped; and prefixes with the same odd characters select exactly their key
    narrow = ["summer 2024/Ünïcødé 'quoted'", "a+b", "a%2B", "a b", "a%20"]
    argvs = [["--bucket", s3.bucket, "--json"]]
    argvs += [["--bucket", s3.bucket, "--prefix", prefix, "--dry-run", "--json"] for prefix in narrow]
    results = run_commands([{"command": "enqueue", "argv": argv, "env": worker.env} for argv in argvs])
    second, *narrowed = [json.loads(result["stdout"]) for result in results]
    assert (second["listed"], second["skipped"], second["enqueued"]) == (len(ODD_KEYS), len(ODD_KEYS), 0)
    assert [(summary["listed"], summary["skipped"]) for summary in narrowed] == [(1, 1)] * len(narrow)


# ---------------------------------------------------------------------------------------------------
# Flower in docker-compose


def compose_config(**variables: str) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` of the project's file with ``variables`` (and no CATALOG_/FLOWER_ ones)."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CATALOG_", "FLOWER_"))} | variables
    command = [binary, "-f", str(ROOT / "docker-compose.yml"), "config"]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)


@pytest.mark.parametrize("auth", [None, ""])
def test_compose_refuses_flower_without_credentials(auth: str | None) -> None:
    rendered = compose_config() if auth is None else compose_config(FLOWER_BASIC_AUTH=auth)
    assert rendered.returncode != 0, "docker-compose rendered a Flower without credentials"
    assert "FLOWER_BASIC_AUTH" in rendered.stderr


def test_compose_flower_has_no_way_to_run_without_basic_auth() -> None:
    credentials = f"ops:{LEAKED}"
    rendered = compose_config(FLOWER_BASIC_AUTH=credentials)
    assert rendered.returncode == 0, rendered.stderr
    flower = yaml.safe_load(rendered.stdout)["services"]["flower"]
    argv = []
    for part in (flower.get("entrypoint"), flower.get("command")):
        argv += part.split() if isinstance(part, str) else list(part or [])
    environment = flower.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(entry.partition("=")[::2] for entry in environment)
    assert "--no-auth" not in argv, "Flower can be started without authentication"
    # Flower 2 can open its API to anyone; nothing may switch that on
    assert not [arg for arg in argv if "unauthenticated" in arg.lower()], argv
    assert not [name for name in environment if "UNAUTHENTICATED" in name.upper()], environment
    # the credentials reach Flower as --basic-auth, or as FLOWER_BASIC_AUTH (read by Flower itself and by
    # `catalog flower`, which refuses to start without it)
    assert f"--basic-auth={credentials}" in argv or environment.get("FLOWER_BASIC_AUTH") == credentials, flower
    for port in flower.get("ports", []):
        published = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published', '')}"
        assert published.startswith("127.0.0.1:"), f"Flower is published beyond this host: {port}"
