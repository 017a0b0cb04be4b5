"""Settings: defaults, validation messages, URL handling and secret masking (no servers needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_enrich.masking import mask_url
from catalog_enrich.settings import Settings, SettingsError


def settings_from(tmp_path: Path, **variables: str) -> Settings:
    # an empty CATALOG_HOME: no local servers run there, so nothing is filled in from them
    return Settings.from_env({"CATALOG_HOME": str(tmp_path), **variables})


def test_defaults(tmp_path: Path) -> None:
    settings = settings_from(tmp_path)
    assert settings.home == tmp_path.resolve()
    assert settings.database_url is None and settings.broker_url is None
    assert settings.base_model == str(tmp_path.resolve() / "models" / "tiny-base")
    assert settings.adapter is None
    assert (settings.batch_size, settings.max_attempts) == (16, 3)
    assert (settings.task_time_limit, settings.visibility_timeout) == (1800, 7200)
    assert (settings.quantization, settings.decoding) == ("auto", "constrained")
    assert settings.max_image_bytes == 20 * 1024 * 1024
    assert settings.max_image_pixels == 40_000_000
    assert settings.s3.endpoint_url is None and settings.s3.region == "us-east-1"


def test_reads_every_variable(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path,
        CATALOG_DATABASE_URL="postgresql+psycopg://u:p@db:5432/catalog",
        CATALOG_BROKER_URL="redis://broker:6379/2",
        CATALOG_BASE_MODEL="org/model",
        CATALOG_ADAPTER="s3://models/adapters/v1",
        CATALOG_BATCH_SIZE="8",
        CATALOG_MAX_ATTEMPTS="5",
        CATALOG_TASK_TIME_LIMIT="60",
        CATALOG_VISIBILITY_TIMEOUT="600",
        CATALOG_QUANTIZATION="NF4",
        CATALOG_DECODING="free",
        CATALOG_MAX_IMAGE_BYTES="1000",
        CATALOG_MAX_IMAGE_PIXELS="1e6",
        AWS_ENDPOINT_URL="http://s3.local:9000",
        AWS_ACCESS_KEY_ID="key",
        AWS_SECRET_ACCESS_KEY="secret",
        AWS_DEFAULT_REGION="eu-west-1",
    )
    assert settings.batch_size == 8 and settings.max_attempts == 5
    assert settings.quantization == "nf4" and settings.decoding == "free"
    assert settings.max_image_pixels == 1_000_000
    assert settings.adapter == "s3://models/adapters/v1"
    assert settings.s3.client_kwargs() == {
        "region_name": "eu-west-1",
        "endpoint_url": "http://s3.local:9000",
        "aws_access_key_id": "key",
        "aws_secret_access_key": "secret",
    }


def test_visibility_timeout_must_exceed_time_limit(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="CATALOG_VISIBILITY_TIMEOUT=1800 must exceed"):
        settings_from(tmp_path, CATALOG_VISIBILITY_TIMEOUT="1800")
    with pytest.raises(SettingsError, match="at least 20000"):
        settings_from(tmp_path, CATALOG_TASK_TIME_LIMIT="10000")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as error:
        settings_from(tmp_path, CATALOG_BATCH_SIZE="many", CATALOG_DECODING="greedy", CATALOG_MAX_ATTEMPTS="0")
    message = str(error.value)
    assert "CATALOG_BATCH_SIZE='many' is not a whole number" in message
    assert "CATALOG_DECODING='greedy'" in message
    assert "CATALOG_MAX_ATTEMPTS=0 must be at least 1" in message


@pytest.mark.parametrize("url", ["mysql://u:p@host/db", "not a url", "postgresql+psycopg://u:p@host", "sqlite:///x.db"])
def test_bad_database_url(tmp_path: Path, url: str) -> None:
    with pytest.raises(SettingsError, match="CATALOG_DATABASE_URL"):
        settings_from(tmp_path, CATALOG_DATABASE_URL=url)


def test_bad_database_url_message_hides_password(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as error:
        settings_from(tmp_path, CATALOG_DATABASE_URL="mysql://user:hunter2@host/db")
    assert "hunter2" not in str(error.value)


def test_plain_postgresql_url_gets_the_psycopg_driver(tmp_path: Path) -> None:
    settings = settings_from(tmp_path, CATALOG_DATABASE_URL="postgresql://u:p@db:5432/catalog")
    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/catalog"


@pytest.mark.parametrize("url", ["amqp://guest@host//", "redis://", "redis://host:6379/queue"])
def test_bad_broker_url(tmp_path: Path, url: str) -> None:
    with pytest.raises(SettingsError, match="CATALOG_BROKER_URL"):
        settings_from(tmp_path, CATALOG_BROKER_URL=url)


@pytest.mark.parametrize(
    "variable,value",
    [("CATALOG_QUANTIZATION", "fp4"), ("CATALOG_PRECISION", "fp16"), ("CATALOG_ADAPTER", "s3://bucket")],
)
def test_bad_choices(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        settings_from(tmp_path, **{variable: value})


def test_missing_database_says_what_to_do(tmp_path: Path) -> None:
    settings = settings_from(tmp_path)
    with pytest.raises(SettingsError, match="catalog services up"):
        settings.require_database_url()
    with pytest.raises(SettingsError, match="CATALOG_BROKER_URL"):
        settings.require_broker_url()


def test_describe_never_shows_secrets(tmp_path: Path) -> None:
    settings = settings_from(
        tmp_path,
        CATALOG_DATABASE_URL="postgresql+psycopg://u:dbsecret@db:5432/catalog",
        CATALOG_BROKER_URL="redis://:redissecret@broker:6379/0",
        AWS_ACCESS_KEY_ID="key",
        AWS_SECRET_ACCESS_KEY="s3secret",
    )
    text = settings.describe()
    for secret in ("dbsecret", "redissecret", "s3secret"):
        assert secret not in text
    assert "u:***@db:5432" in text


def test_mask_url() -> None:
    assert mask_url("redis://:pw@host:1/0") == "redis://:***@host:1/0"
    assert mask_url("redis://host:1/0") == "redis://host:1/0"


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = settings_from(tmp_path)
    with pytest.raises(AttributeError):
        settings.batch_size = 3  # type: ignore[misc]
