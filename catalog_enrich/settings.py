"""Every setting of the project in one frozen object, read from environment variables and checked once.

``Settings.from_env()`` reads the variables below and reports every problem at once, each with what to
set instead. When the database or broker URL is unset, the URLs of the local servers started by
``catalog services up`` are used if those servers are running.

=========================== ==================================================================
CATALOG_HOME                 working folder for models, services and caches (default ./.catalog)
CATALOG_DATABASE_URL         postgresql+psycopg://user:password@host:port/database
CATALOG_BROKER_URL           redis://[:password@]host:port/db
CATALOG_BASE_MODEL           base model path or hub id (default CATALOG_HOME/models/tiny-base)
CATALOG_ADAPTER              LoRA adapter: local path or s3://bucket/prefix (unset: base model only)
CATALOG_BATCH_SIZE           image references per queue message (default 16)
CATALOG_MAX_ATTEMPTS         model attempts per image before it is dead-lettered (default 3)
CATALOG_TASK_TIME_LIMIT      hard time limit of one batch task, seconds (default 1800)
CATALOG_VISIBILITY_TIMEOUT   seconds before an unacknowledged message is redelivered (default 7200)
CATALOG_REAPER_QUIET         seconds a run's unfinished items stay untouched, the broker empty, before the
                             reaper resends them (default 120)
CATALOG_QUANTIZATION         auto, nf4, int8 or none (default auto: nf4 on a GPU, none on CPU)
CATALOG_PRECISION            auto, bfloat16 or float32 (default auto: bf16 on GPUs and CPUs with native bf16)
CATALOG_DECODING             constrained or free (default constrained)
CATALOG_MAX_IMAGE_BYTES      largest image file accepted (default 20 MiB)
CATALOG_MAX_IMAGE_PIXELS     largest image accepted, width x height (default 40e6)
CATALOG_BACKFILL_CRON        when beat enqueues the backfill, five cron fields in UTC (default "0 2 * * *")
CATALOG_BACKFILL_TARGETS     what the backfill enqueues: bucket or bucket/prefix, comma-separated (default none)
CATALOG_REAPER_INTERVAL      seconds between beat's checks for stalled runs (default 300)
CATALOG_LOG_FORMAT           text or json (one object per line) for workers and beat (default text)
AWS_ENDPOINT_URL_S3          S3 endpoint (or AWS_ENDPOINT_URL); unset: AWS itself
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION   the standard AWS credentials
=========================== ==================================================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from catalog_enrich.backfill_settings import DEFAULT_BACKFILL_CRON, BackfillTarget, cron_problems, parse_targets
from catalog_enrich.masking import mask_url

#: accepted values of CATALOG_QUANTIZATION; ``auto`` lets the model loader pick by device
QUANTIZATIONS = ("auto", "nf4", "int8", "none")

#: accepted values of CATALOG_PRECISION; ``auto`` lets the model loader pick by device (``vlm.precision``)
PRECISIONS = ("auto", "float32", "bfloat16")

#: accepted values of CATALOG_DECODING
DECODINGS = ("constrained", "free")

#: accepted values of CATALOG_LOG_FORMAT
LOG_FORMATS = ("text", "json")

#: the region used when AWS_DEFAULT_REGION is unset
DEFAULT_REGION = "us-east-1"

#: schemes SQLAlchemy would route to a driver this project does not install; rewritten to psycopg 3
_POSTGRES_ALIASES = ("postgresql", "postgres", "postgresql+psycopg")


class SettingsError(ValueError):
    """One or more settings are missing or invalid; the message lists each with what to do."""


def catalog_home(environ: Mapping[str, str] | None = None) -> Path:
    """The absolute CATALOG_HOME folder (default ``./.catalog``)."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("CATALOG_HOME") or ".catalog").expanduser().resolve()


@dataclass(frozen=True, kw_only=True)
class S3Settings:
    """Where images and adapters are read from.

    endpoint_url: an S3-compatible server, or None for AWS itself.
    access_key_id, secret_access_key: credentials, or None to let boto3 find them (profile, instance role).
    region: the region requests are signed for.
    """

    endpoint_url: str | None = None
    access_key_id: str | None = None
    # out of repr: settings objects end up in printed config (Celery's `conf` command, Flower's Config tab)
    secret_access_key: str | None = field(default=None, repr=False)
    region: str = DEFAULT_REGION

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("s3", **kwargs)``."""
        kwargs = {"region_name": self.region}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.access_key_id and self.secret_access_key:
            kwargs["aws_access_key_id"] = self.access_key_id
            kwargs["aws_secret_access_key"] = self.secret_access_key
        return kwargs


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The project's configuration; see the module docstring for the variable behind each attribute.

    home: CATALOG_HOME, absolute.
    database_url: SQLAlchemy URL of the catalog database, or None when neither set nor running locally.
    broker_url: Redis URL of the Celery broker, or None likewise.
    base_model, adapter: what the workers load (adapter None: the base model alone).
    batch_size, max_attempts, task_time_limit, visibility_timeout: queueing and retry behaviour.
    reaper_quiet: seconds a run's unfinished items must stay untouched, with the broker empty, before the
    reaper resends them.
    quantization, precision, decoding: how the model runs.
    max_image_bytes, max_image_pixels: images larger than this are refused before decoding.
    backfill_cron, backfill_targets: when beat enqueues the nightly backfill, and which bucket prefixes.
    reaper_interval: seconds between beat's checks for stalled runs.
    log_format: ``text`` or ``json`` log lines.
    s3: the S3 endpoint and credentials.
    from_local_services: variables whose value came from the running local services.
    """

    home: Path
    # out of repr, which would show their passwords wherever the settings are printed: Celery's `conf`
    # control command and Flower's worker Config tab show the settings object the worker app carries
    database_url: str | None = field(default=None, repr=False)
    broker_url: str | None = field(default=None, repr=False)
    base_model: str = ""
    adapter: str | None = None
    batch_size: int = 16
    max_attempts: int = 3
    task_time_limit: int = 1800
    visibility_timeout: int = 7200
    reaper_quiet: int = 120
    quantization: str = "auto"
    precision: str = "auto"
    decoding: str = "constrained"
    max_image_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    backfill_cron: str = DEFAULT_BACKFILL_CRON
    backfill_targets: tuple[BackfillTarget, ...] = ()
    reaper_interval: int = 300
    log_format: str = "text"
    s3: S3Settings = field(default_factory=S3Settings)
    from_local_services: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = _check(self)
        if problems:
            raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and check every setting; raises SettingsError listing all problems."""
        return _read(os.environ if environ is None else environ)

    def require_database_url(self) -> str:
        """The database URL, or a SettingsError that says how to get one."""
        if self.database_url is None:
            raise SettingsError(
                "no database: set CATALOG_DATABASE_URL=postgresql+psycopg://user:password@host:5432/catalog, "
                f"or start the local one with `catalog services up` (CATALOG_HOME={self.home})."
            )
        return self.database_url

    def require_broker_url(self) -> str:
        """The broker URL, or a SettingsError that says how to get one."""
        if self.broker_url is None:
            raise SettingsError(
                "no broker: set CATALOG_BROKER_URL=redis://host:6379/0, "
                f"or start the local one with `catalog services up` (CATALOG_HOME={self.home})."
            )
        return self.broker_url

    def describe(self) -> str:
        """The settings as ``name: value`` lines, with passwords and secret keys masked."""
        local = set(self.from_local_services)

        def origin(variable: str) -> str:
            return " (local services)" if variable in local else ""

        lines = {
            "home": str(self.home),
            "database": (mask_url(self.database_url) if self.database_url else "unset")
            + origin("CATALOG_DATABASE_URL"),
            "broker": (mask_url(self.broker_url) if self.broker_url else "unset") + origin("CATALOG_BROKER_URL"),
            "base model": self.base_model,
            "adapter": self.adapter or "none (base model only)",
            "batch size": str(self.batch_size),
            "max attempts": str(self.max_attempts),
            "task time limit": f"{self.task_time_limit} s",
            "visibility timeout": f"{self.visibility_timeout} s",
            "reaper quiet": f"{self.reaper_quiet} s",
            "quantization": self.quantization,
            "precision": self.precision,
            "decoding": self.decoding,
            "max image bytes": str(self.max_image_bytes),
            "max image pixels": str(self.max_image_pixels),
            "backfill cron": self.backfill_cron,
            "backfill targets": ", ".join(map(str, self.backfill_targets)) or "none",
            "reaper interval": f"{self.reaper_interval} s",
            "log format": self.log_format,
            "s3 endpoint": (mask_url(self.s3.endpoint_url) if self.s3.endpoint_url else "AWS")
            + origin("AWS_ENDPOINT_URL_S3"),
            "s3 access key id": self.s3.access_key_id or "unset (boto3 default chain)",
            "s3 secret access key": "set (hidden)" if self.s3.secret_access_key else "unset",
            "s3 region": self.s3.region,
        }
        return "\n".join(f"{name}: {value}" for name, value in lines.items())


def _check(settings: Settings) -> list[str]:
    """Every problem with already-parsed settings, each with what to do."""
    problems = []
    positive = {
        "CATALOG_BATCH_SIZE": settings.batch_size,
        "CATALOG_MAX_ATTEMPTS": settings.max_attempts,
        "CATALOG_TASK_TIME_LIMIT": settings.task_time_limit,
        "CATALOG_VISIBILITY_TIMEOUT": settings.visibility_timeout,
        "CATALOG_REAPER_QUIET": settings.reaper_quiet,
        "CATALOG_MAX_IMAGE_BYTES": settings.max_image_bytes,
        "CATALOG_MAX_IMAGE_PIXELS": settings.max_image_pixels,
        "CATALOG_REAPER_INTERVAL": settings.reaper_interval,
    }
    problems += [f"{name}={value} must be at least 1" for name, value in positive.items() if value < 1]
    if settings.visibility_timeout <= settings.task_time_limit:
        # a task still running when the timeout passes is handed to a second worker and runs twice
        problems.append(
            f"CATALOG_VISIBILITY_TIMEOUT={settings.visibility_timeout} must exceed CATALOG_TASK_TIME_LIMIT="
            f"{settings.task_time_limit}, or a batch still running is delivered again; set it to at least "
            f"{2 * settings.task_time_limit} or lower the time limit."
        )
    if settings.quantization not in QUANTIZATIONS:
        choices = ", ".join(QUANTIZATIONS)
        problems.append(f"CATALOG_QUANTIZATION={settings.quantization!r}: use one of {choices}.")
    if settings.precision not in PRECISIONS:
        problems.append(f"CATALOG_PRECISION={settings.precision!r}: use one of {', '.join(PRECISIONS)}.")
    if settings.decoding not in DECODINGS:
        problems.append(f"CATALOG_DECODING={settings.decoding!r}: use one of {', '.join(DECODINGS)}.")
    if settings.log_format not in LOG_FORMATS:
        problems.append(f"CATALOG_LOG_FORMAT={settings.log_format!r}: use one of {', '.join(LOG_FORMATS)}.")
    problems += cron_problems(settings.backfill_cron)
    if settings.database_url is not None:
        problems += check_database_url(settings.database_url)
    if settings.broker_url is not None:
        problems += check_broker_url(settings.broker_url)
    if settings.s3.endpoint_url is not None:
        problems += check_endpoint_url(settings.s3.endpoint_url)
    if settings.adapter is not None:
        problems += check_adapter(settings.adapter)
    return problems


def normalize_database_url(url: str) -> str:
    """``url`` with a plain ``postgresql://`` or ``postgres://`` scheme rewritten to psycopg 3's."""
    scheme, separator, rest = url.partition("://")
    if separator and scheme in _POSTGRES_ALIASES:
        return f"postgresql+psycopg://{rest}"
    return url


def _split_url(url: str) -> SplitResult | None:
    """``urlsplit(url)``, or None when the text is no URL at all (an unescaped ``[`` in a password does that)."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _unparseable(variable: str, url: str) -> str:
    """The problem of a URL that cannot be split, without its password."""
    return f"{variable}={mask_url(url)!r} cannot be parsed: percent-encode @ : / ? # [ ] % in the password."


def check_database_url(url: str) -> list[str]:
    """Problems with a database URL (empty when it is fine)."""
    example = "postgresql+psycopg://user:password@host:5432/catalog"
    parts = _split_url(url)
    if parts is None:
        return [_unparseable("CATALOG_DATABASE_URL", url)]
    if parts.scheme != "postgresql+psycopg":
        return [f"CATALOG_DATABASE_URL={mask_url(url)!r} is not a PostgreSQL URL: use {example}."]
    if not (parts.hostname or "host=" in parts.query) or not parts.path.strip("/"):
        return [f"CATALOG_DATABASE_URL={mask_url(url)!r} needs a host and a database name, like {example}."]
    return []


def check_broker_url(url: str) -> list[str]:
    """Problems with a Redis broker URL (empty when it is fine)."""
    example = "redis://:password@host:6379/0"
    parts = _split_url(url)
    if parts is None:
        return [_unparseable("CATALOG_BROKER_URL", url)]
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        return [f"CATALOG_BROKER_URL={mask_url(url)!r} is not a Redis URL: use {example}."]
    database = parts.path.strip("/")
    if database and not database.isdigit():
        return [f"CATALOG_BROKER_URL={mask_url(url)!r}: the path must be a database number, like {example}."]
    try:
        parts.port  # noqa: B018 - raises on a non-numeric port
    except ValueError:
        return [f"CATALOG_BROKER_URL={mask_url(url)!r} has an invalid port: use {example}."]
    return []


def check_endpoint_url(url: str) -> list[str]:
    """Problems with an S3 endpoint URL (empty when it is fine)."""
    parts = _split_url(url)
    if parts is None:
        return [_unparseable("AWS_ENDPOINT_URL_S3", url)]
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [f"AWS_ENDPOINT_URL_S3={mask_url(url)!r} is not an http(s) URL: use e.g. http://127.0.0.1:18333."]
    return []


def check_adapter(adapter: str) -> list[str]:
    """Problems with an adapter location (empty when it is fine)."""
    if adapter.startswith("s3://"):
        parts = urlsplit(adapter)
        if not parts.netloc or not parts.path.strip("/"):
            return [f"CATALOG_ADAPTER={adapter!r}: an S3 adapter needs a bucket and a prefix, s3://bucket/prefix."]
    elif "://" in adapter:
        return [f"CATALOG_ADAPTER={adapter!r}: use a local folder or s3://bucket/prefix."]
    return []


def _read(environ: Mapping[str, str]) -> Settings:
    """Parse ``environ`` into Settings, collecting parse problems and check problems into one error."""
    problems: list[str] = []

    def text(name: str) -> str | None:
        return environ.get(name, "").strip() or None

    def number(name: str, default: int) -> int:
        raw = text(name)
        if raw is None:
            return default
        try:
            return int(raw)
        except ValueError:
            pass
        try:
            # sizes are often written like 40e6
            value = float(raw)
        except ValueError:
            value = float("nan")
        if value.is_integer():
            return int(value)
        problems.append(f"{name}={raw!r} is not a whole number: use e.g. {name}={default}.")
        return default

    home = catalog_home(environ)
    database_url = text("CATALOG_DATABASE_URL")
    broker_url = text("CATALOG_BROKER_URL")
    endpoint = text("AWS_ENDPOINT_URL_S3") or text("AWS_ENDPOINT_URL")
    # the local S3 server is used only when nothing at all says where S3 is, not even a profile
    s3_unset = endpoint is None and text("AWS_ACCESS_KEY_ID") is None and text("AWS_PROFILE") is None
    local: dict[str, str] = {}
    if database_url is None or broker_url is None or s3_unset:
        from catalog_enrich.services.stack import running_env

        local = running_env(home)
    used_local = []
    if database_url is None and "CATALOG_DATABASE_URL" in local:
        database_url = local["CATALOG_DATABASE_URL"]
        used_local.append("CATALOG_DATABASE_URL")
    if broker_url is None and "CATALOG_BROKER_URL" in local:
        broker_url = local["CATALOG_BROKER_URL"]
        used_local.append("CATALOG_BROKER_URL")
    aws = {name: text(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    if s3_unset and "AWS_ENDPOINT_URL_S3" in local:
        endpoint = local["AWS_ENDPOINT_URL_S3"]
        aws = {name: local[name] for name in aws}
        used_local.append("AWS_ENDPOINT_URL_S3")
    s3 = S3Settings(
        endpoint_url=endpoint,
        access_key_id=aws["AWS_ACCESS_KEY_ID"],
        secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
        region=aws["AWS_DEFAULT_REGION"] or DEFAULT_REGION,
    )
    backfill_targets, target_problems = parse_targets(text("CATALOG_BACKFILL_TARGETS"))
    problems += target_problems
    values = {
        "home": home,
        "database_url": normalize_database_url(database_url) if database_url else None,
        "broker_url": broker_url,
        "base_model": text("CATALOG_BASE_MODEL") or str(home / "models" / "tiny-base"),
        "adapter": text("CATALOG_ADAPTER"),
        "batch_size": number("CATALOG_BATCH_SIZE", 16),
        "max_attempts": number("CATALOG_MAX_ATTEMPTS", 3),
        "task_time_limit": number("CATALOG_TASK_TIME_LIMIT", 1800),
        "visibility_timeout": number("CATALOG_VISIBILITY_TIMEOUT", 7200),
        "reaper_quiet": number("CATALOG_REAPER_QUIET", 120),
        "quantization": (text("CATALOG_QUANTIZATION") or "auto").lower(),
        "precision": (text("CATALOG_PRECISION") or "auto").lower(),
        "decoding": (text("CATALOG_DECODING") or "constrained").lower(),
        "max_image_bytes": number("CATALOG_MAX_IMAGE_BYTES", 20 * 1024 * 1024),
        "max_image_pixels": number("CATALOG_MAX_IMAGE_PIXELS", 40_000_000),
        "backfill_cron": " ".join((text("CATALOG_BACKFILL_CRON") or DEFAULT_BACKFILL_CRON).split()),
        "backfill_targets": backfill_targets,
        "reaper_interval": number("CATALOG_REAPER_INTERVAL", 300),
        "log_format": (text("CATALOG_LOG_FORMAT") or "text").lower(),
        "s3": s3,
        "from_local_services": tuple(used_local),
    }
    try:
        settings = Settings(**values)
    except SettingsError as error:
        problems += str(error).splitlines()[1:]
        problems = [problem.strip() for problem in problems]
    if problems:
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))
    return settings
