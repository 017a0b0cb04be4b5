"""The run report as one self-contained HTML page: inline CSS, inline SVG charts, ``data:`` images.

Every value from the database or S3 passes through ``esc`` before it reaches the page: raw model output
is untrusted text and may contain markup. The Content-Security-Policy forbids scripts and any request
the page would make, so even a value that slipped through could neither run nor call out.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from catalog_enrich.run_report import DeadLetterEntry, EnrichedImage, RunReport
from catalog_enrich.run_status import format_duration, format_rate

#: no scripts, no fetches: only inline styles and data: images
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

#: chart geometry, pixels
BAR_HEIGHT, LABEL_WIDTH, BAR_SPACE, COUNT_WIDTH = 18, 170, 220, 50

#: longest value label drawn in a chart before it is shortened
LABEL_CHARS = 26

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d232a; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 2px solid #d5dde5; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; text-align: left; vertical-align: top; }
tr:nth-child(even) { background: #f3f6f9; }
.charts { display: flex; flex-wrap: wrap; gap: 24px; }
.chart h3 { font-size: 14px; margin: 0 0 4px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
.card { width: 220px; border: 1px solid #d5dde5; border-radius: 6px; padding: 8px; background: #fafcfe; }
.card img { display: block; margin: 0 auto 6px; border-radius: 4px; }
.card .key { font-family: monospace; font-size: 12px; word-break: break-all; color: #45525e; }
.card dl { display: grid; grid-template-columns: auto 1fr; gap: 0 6px; margin: 4px 0 0; font-size: 12px; }
.card dt { color: #6b7885; } .card dd { margin: 0; }
.missing { width: 96px; height: 96px; margin: 0 auto 6px; background: #eceff3; font-size: 11px; padding: 4px; }
pre { white-space: pre-wrap; word-break: break-all; max-width: 640px; margin: 0; font-size: 12px;
      background: #fbf3f2; padding: 4px; }
.note { color: #8a5a00; }
"""


def esc(value: object) -> str:
    """``value`` as text safe inside HTML and SVG content and quoted attributes."""
    return escape("" if value is None else str(value), quote=True)


def _time(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def _duration(report: RunReport) -> str:
    progress = report.progress
    if progress.finished_at is None:
        return "still running" if progress.status in ("enqueuing", "running") else "-"
    return format_duration((progress.finished_at - progress.started_at).total_seconds())


def _summary(report: RunReport) -> str:
    progress = report.progress
    latency = "-" if report.mean_latency_ms is None else f"{report.mean_latency_ms:.0f} ms"
    rows = [
        ("status", progress.status),
        ("images", f"s3://{progress.bucket}/{progress.prefix}"),
        ("model version", progress.model_version),
        ("listed / skipped / enqueued", f"{progress.listed} / {progress.skipped} / {progress.enqueued}"),
        ("done / dead-lettered / failed / queued",
         f"{progress.done} / {progress.dead_lettered} / {progress.failed} / {progress.queued}"),
        ("started", _time(progress.started_at)),
        ("finished", _time(progress.finished_at)),
        ("duration", _duration(report)),
        ("throughput", format_rate(progress.rate).replace("/s", " images/s")),
        ("mean model latency", latency),
    ]  # fmt: skip
    cells = "".join(f"<tr><th>{esc(name)}</th><td>{esc(value)}</td></tr>" for name, value in rows)
    return f"<table>{cells}</table>"


def bar_chart(title: str, counts: list[tuple[str, int]]) -> str:
    """One attribute's distribution as an inline SVG of horizontal bars."""
    if not counts:
        return f'<div class="chart"><h3>{esc(title)}</h3><p>no values</p></div>'
    most = max(n for _, n in counts)
    height = BAR_HEIGHT * len(counts) + 4
    width = LABEL_WIDTH + BAR_SPACE + COUNT_WIDTH
    bars = []
    for row, (value, n) in enumerate(counts):
        y = row * BAR_HEIGHT + 2
        label = value if len(value) <= LABEL_CHARS else value[: LABEL_CHARS - 1] + "…"
        length = max(1, round(BAR_SPACE * n / most))
        bars.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 13}" text-anchor="end">{esc(label)}<title>{esc(value)}</title></text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 2}" width="{length}" height="{BAR_HEIGHT - 4}" fill="#3b7dd8"/>'
            f'<text x="{LABEL_WIDTH + length + 4}" y="{y + 13}">{n}</text>'
        )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="12" '
        f'font-family="system-ui, sans-serif" role="img" aria-label="{esc(title)}">{"".join(bars)}</svg>'
    )
    return f'<div class="chart"><h3>{esc(title)}</h3>{svg}</div>'


def _card(image: EnrichedImage) -> str:
    thumb = image.thumbnail
    if thumb.data_uri:
        picture = f'<img src="{esc(thumb.data_uri)}" alt="{esc(image.key)}">'
    else:
        picture = f'<div class="missing">{esc(thumb.problem)}</div>'
    attributes = "".join(f"<dt>{esc(name)}</dt><dd>{esc(value)}</dd>" for name, value in image.attributes.items())
    latency = "" if image.latency_ms is None else f", {image.latency_ms} ms"
    return (
        f'<div class="card">{picture}<div class="key">{esc(image.key)}</div>'
        f"<dl>{attributes}<dt>attempts</dt><dd>{esc(image.attempts)}{esc(latency)}</dd></dl></div>"
    )


def _letter_row(letter: DeadLetterEntry) -> str:
    raw = "-" if letter.raw_output is None else f"<pre>{esc(letter.raw_output)}</pre>"
    return (
        f"<tr><td>{esc(letter.key)}</td><td>{esc(letter.reason)}</td><td>{esc(letter.attempts)}</td><td>{raw}</td></tr>"
    )


def _cap_note(shown: int, total: int, what: str) -> str:
    if shown >= total:
        return ""
    return f'<p class="note">Showing the first {shown} of {total} {esc(what)} (ordered by key).</p>'


def render_report(report: RunReport, generated_at: datetime) -> str:
    """The complete HTML page for ``report``."""
    run_id = report.progress.run_id
    charts = "".join(bar_chart(name, counts) for name, counts in report.distributions.items())
    cards = "".join(_card(image) for image in report.images) or "<p>No enriched images in this run.</p>"
    letters = "".join(_letter_row(letter) for letter in report.dead_letters)
    letters_table = (
        f"<table><tr><th>key</th><th>reason</th><th>attempts</th><th>raw output</th></tr>{letters}</table>"
        if letters
        else "<p>No dead letters.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(CONTENT_SECURITY_POLICY)}">
<title>Run {esc(run_id)}</title><style>{_STYLE}</style></head>
<body>
<h1>Enrichment run {esc(run_id)}</h1>
<p>Generated {esc(_time(generated_at))} from the catalog database and S3.</p>
<h2>Run</h2>
{_summary(report)}
<h2>Attribute distributions ({report.enriched_total} enriched images)</h2>
<div class="charts">{charts}</div>
<h2>Enriched images</h2>
{_cap_note(len(report.images), report.enriched_total, "enriched images")}
<div class="grid">{cards}</div>
<h2>Dead letters ({report.dead_letters_total})</h2>
{_cap_note(len(report.dead_letters), report.dead_letters_total, "dead letters")}
{letters_table}
</body></html>
"""
