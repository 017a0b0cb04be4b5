"""``catalog report``: a run's self-contained HTML page, built from a real PostgreSQL ledger and S3 bucket."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from catalog_enrich.cli import main
from catalog_enrich.report_page import bar_chart, render_report
from catalog_enrich.run_report import build_report, thumbnail
from catalog_enrich.schema import SCHEMA_VERSION, labels_from_record
from db import (
    CatalogResult,
    ItemOutcome,
    ItemRef,
    add_ledger_items,
    create_run,
    make_session_factory,
    record_item_outcomes,
    upsert_catalog_rows,
)
from db.ledger import DeadLetterRecord, record_dead_letters
from db.runs import complete_run_if_finished, mark_enqueued
from vlm.data.synth import synth_records

pytestmark = pytest.mark.services

#: what a hostile model could answer; it must reach the page as text, never as markup
HOSTILE = 'sure! <script>alert(1)</script> {"color": "<img src=x onerror=alert(2)>"}'

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    factory = make_session_factory(database_url)
    yield factory
    factory.kw["bind"].dispose()


def build_run(sessions: sessionmaker[Session], s3: Any, n: int = 4) -> str:
    """A completed run of ``n`` enriched synthetic images, one image that is not an image, and a dead letter
    with hostile raw output."""
    records = list(synth_records(n, 5))
    keys = [f"shots/{record['id']}.jpg" for record in records]
    etags = {}
    for key, record in zip(keys, records, strict=True):
        etags[key] = s3.client.put_object(Bucket=s3.bucket, Key=key, Body=record["image"]["bytes"])["ETag"].strip('"')
    broken = "shots/broken <b>.jpg"
    etags[broken] = s3.client.put_object(Bucket=s3.bucket, Key=broken, Body=b"not a picture")["ETag"].strip('"')
    refs = [ItemRef(s3.bucket, key, etag) for key, etag in etags.items()] + [ItemRef(s3.bucket, "shots/bad.jpg", "e")]
    with sessions.begin() as session:
        run_id = create_run(session, bucket=s3.bucket, prefix="shots/", model_version="m1")
        ids = add_ledger_items(session, run_id, refs)
        mark_enqueued(session, run_id)
        results = [
            CatalogResult(
                bucket=s3.bucket,
                key=key,
                attributes=labels_from_record(record),
                raw_output="{}",
                etag=etags[key],
                model_version="m1",
                schema_version=SCHEMA_VERSION,
                run_id=run_id,
                latency_ms=100 + 10 * position,
            )
            for position, (key, record) in enumerate(zip(keys, records, strict=True))
        ]
        broken_row = replace(results[0], key=broken, etag=etags[broken])
        upsert_catalog_rows(session, [*results, broken_row])
        record_item_outcomes(session, [ItemOutcome(item_id, "done") for item_id in ids[:-1]])
        letter = DeadLetterRecord(
            ids[-1], run_id, s3.bucket, "shots/bad.jpg", "e", "invalid <output>", HOSTILE, 3, "m1"
        )
        record_dead_letters(session, [letter])
        session.execute(
            text("UPDATE enrichment_runs SET started_at = now() - interval '10 seconds' WHERE id = :id"), {"id": run_id}
        )
        assert complete_run_if_finished(session, run_id)
    return run_id


def data_uris(page: str) -> list[str]:
    return re.findall(r'src="(data:[^"]*)"', page)


def test_report_page_is_escaped_and_self_contained(sessions, s3) -> None:
    run_id = build_run(sessions, s3)
    with sessions() as session:
        report = build_report(session, s3.client, run_id)
    assert (report.enriched_total, report.dead_letters_total, len(report.images)) == (5, 1, 5)
    assert report.mean_latency_ms == pytest.approx((100 + 110 + 120 + 130 + 100) / 5)
    page = render_report(report, datetime.now(UTC))

    assert "<script" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "invalid &lt;output&gt;" in page and "broken &lt;b&gt;.jpg" in page
    # nothing is fetched from anywhere: every src is inline and the policy forbids the rest
    assert not re.search(r"(src|href)=\"(?!data:)", page)
    assert 'content="default-src &#x27;none&#x27;; img-src data:;' in page
    uris = data_uris(page)
    assert len(uris) == 4
    for uri in uris:
        assert uri.startswith("data:image/jpeg;base64,")
        with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
            assert image.format == "JPEG" and max(image.size) <= 96
    assert "not an image Pillow can read" in page
    assert page.count("<svg") == len(report.distributions) == 6
    assert f"Enrichment run {run_id}" in page and "images/s" in page and "ms</td>" in page


def test_report_caps_rows_and_says_so(sessions, s3) -> None:
    run_id = build_run(sessions, s3, n=3)
    with sessions() as session:
        report = build_report(session, s3.client, run_id, cap=2)
    page = render_report(report, datetime.now(UTC))
    assert len(report.images) == 2 and "Showing the first 2 of 4 enriched images" in page


def test_chart_and_thumbnail_edge_cases() -> None:
    chart = bar_chart("color<>", [("Navy & <Blue>", 3), ("x" * 60, 1)])
    assert "Navy &amp; &lt;Blue&gt;" in chart and "color&lt;&gt;" in chart and 'width="220"' in chart
    assert "no values" in bar_chart("usage", [])
    huge = io.BytesIO()
    Image.new("RGB", (400, 300), "red").save(huge, format="PNG")
    assert thumbnail(huge.getvalue(), max_pixels=1000).problem.startswith("image of 400x300 pixels")
    transparent = io.BytesIO()
    Image.new("RGBA", (200, 100), (0, 0, 0, 0)).save(transparent, format="PNG")
    uri = thumbnail(transparent.getvalue()).data_uri
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as image:
        # transparent areas turn white, as product photos are shot on white
        assert image.size == (96, 48) and image.getpixel((10, 10)) > (240, 240, 240)


def test_report_command(sessions, s3, database_url, service_env, monkeypatch, tmp_path: Path, capsys) -> None:
    run_id = build_run(sessions, s3)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if service_env.get(name):
            monkeypatch.setenv(name, service_env[name])
    monkeypatch.setenv("CATALOG_DATABASE_URL", database_url)
    out = tmp_path / "report.html"
    assert main(["report", run_id, "--out", str(out)]) == 0
    assert "5 of 5 enriched images, 1 without thumbnail, 1 of 1 dead letters" in capsys.readouterr().out
    assert len(data_uris(out.read_text())) == 4
    assert main(["report", "no-such-run", "--out", str(out)]) == 1
    assert capsys.readouterr().err.startswith("error: no run 'no-such-run'")
    assert main(["report", run_id, "--out", str(tmp_path / "missing" / "r.html")]) == 2


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_a_headless_browser(sessions, s3, tmp_path: Path) -> None:
    run_id = build_run(sessions, s3)
    with sessions() as session:
        page = render_report(build_report(session, s3.client, run_id), datetime.now(UTC))
    html_file, png = tmp_path / "report.html", tmp_path / "shot.png"
    html_file.write_text(page, encoding="utf-8")
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={png}",
        "--window-size=1200,2000",
        html_file.as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    with Image.open(png) as shot:
        assert shot.format == "PNG" and shot.size == (1200, 2000)
        # text, bars and thumbnails: a blank or error page has only a handful of colours
        colours = shot.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 200
