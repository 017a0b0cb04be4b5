"""Tests of ``catalog validate``, through the real CLI dispatch."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading

import pytest

from catalog_enrich import cli
from catalog_enrich.schema import target_json

GOOD = {
    "product_name": "Turtle Check Men Navy Blue Shirt",
    "product_type": "Shirts",
    "color": "Navy Blue",
    "gender": "Men",
    "season": "Fall",
    "usage": "Casual",
}

#: runs the CLI with only this command registered, so the test does not depend on the other commands
CLI_SNIPPET = (
    "import sys; from catalog_enrich import cli; "
    "cli.COMMANDS = {'validate': cli.COMMANDS['validate']}; sys.exit(cli.main(sys.argv[1:]))"
)


@pytest.fixture(autouse=True)
def only_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMANDS", {"validate": cli.COMMANDS["validate"]})


def run_validate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: bytes, *args: str
) -> tuple[int, list[dict], str]:
    """Run ``catalog validate`` on ``stdin``; the exit status, the verdicts and stderr."""
    stdout = io.BytesIO()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(stdout, encoding="utf-8", write_through=True))
    status = cli.main(["validate", *args])
    verdicts = [json.loads(line) for line in stdout.getvalue().decode("utf-8").splitlines()]
    return status, verdicts, capsys.readouterr().err


def encoded(*raws: str) -> bytes:
    """Input lines: each raw output as a JSON-encoded string."""
    return "".join(json.dumps(raw) + "\n" for raw in raws).encode()


def test_one_verdict_per_line_in_order(monkeypatch, capsys) -> None:
    stdin = encoded("```json\n" + target_json(GOOD) + "\n```", "", "{") + b'{"not": "a string"}\n\n\xff\xfe\n'
    status, verdicts, _ = run_validate(monkeypatch, capsys, stdin)
    assert status == 0
    assert verdicts == [
        {"ok": True, "attributes": GOOD},
        {"ok": False, "reason": "output is empty"},
        {"ok": False, "reason": "JSON is truncated: the output ends before the object is closed"},
        {"ok": False, "reason": "input line is not a JSON-encoded string"},
        {"ok": False, "reason": "input line is blank"},
        {"ok": False, "reason": "input line is not valid UTF-8"},
    ]


def test_output_is_utf8_and_compact(monkeypatch, capsys) -> None:
    _, verdicts, _ = run_validate(monkeypatch, capsys, encoded(target_json({**GOOD, "color": "crème"})))
    assert verdicts[0]["attributes"]["color"] == "Crème"


def test_surrogates_in_input_lines_are_refused(monkeypatch, capsys) -> None:
    stdin = b'"' + target_json({**GOOD, "color": "X"}).replace('"', '\\"').replace("X", "\\ud800").encode() + b'"\n'
    _, verdicts, _ = run_validate(monkeypatch, capsys, stdin)
    assert verdicts == [{"ok": False, "reason": "color contains a lone surrogate U+D800"}]


def test_summary_goes_to_stderr(monkeypatch, capsys) -> None:
    status, verdicts, err = run_validate(monkeypatch, capsys, encoded(target_json(GOOD), "nope"), "--summary")
    assert status == 0
    assert len(verdicts) == 2
    assert err.strip() == "2 outputs: 1 ok, 1 rejected"


def test_no_summary_by_default(monkeypatch, capsys) -> None:
    _, _, err = run_validate(monkeypatch, capsys, encoded("nope"))
    assert err == ""


def test_usage_error_exits_2(monkeypatch, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["validate", "--no-such-option"])
    assert exit_info.value.code == 2


def test_verdicts_stream_line_by_line() -> None:
    """Each verdict arrives before the next input line is written: the command can sit in a pipeline."""
    process = subprocess.Popen(
        [sys.executable, "-c", CLI_SNIPPET, "validate"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # a command that buffered its output would leave readline waiting; the timer turns a hang into a failure
    timer = threading.Timer(30, process.kill)
    timer.start()
    try:
        for raw, ok in [(target_json(GOOD), True), ("{", False)]:
            process.stdin.write(encoded(raw))
            process.stdin.flush()
            assert json.loads(process.stdout.readline())["ok"] is ok
        process.stdin.close()
        assert process.wait() == 0
        assert process.stdout.read() == b""
    finally:
        timer.cancel()
        process.kill()
        process.wait()
