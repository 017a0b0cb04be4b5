"""Parquet round trips, the two image column layouts, splitting and the ``catalog synth`` command."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from catalog_enrich import cli
from catalog_enrich.schema import KEYS, labels_from_record
from vlm.data.dataset import (
    ARROW_SCHEMA,
    Example,
    image_relpath,
    iter_examples,
    read_examples,
    split_examples,
    write_parquet,
)
from vlm.data.synth import synth_records


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return list(synth_records(40, seed=1))


@pytest.fixture(scope="module")
def parquet_file(tmp_path_factory: pytest.TempPathFactory, records: list[dict]) -> Path:
    path = tmp_path_factory.mktemp("data") / "synth.parquet"
    write_parquet(iter(records), path, rows_per_group=16)
    return path


def test_written_file_has_the_dataset_layout(parquet_file: Path) -> None:
    source = pq.ParquetFile(parquet_file)
    assert source.schema_arrow == ARROW_SCHEMA
    assert source.metadata.num_rows == 40
    assert source.metadata.num_row_groups == 3  # streamed 16 + 16 + 8
    assert not parquet_file.with_name(parquet_file.name + ".partial").exists()


def test_struct_image_column_round_trips(parquet_file: Path, records: list[dict]) -> None:
    examples = read_examples(parquet_file)
    assert [e.id for e in examples] == [r["id"] for r in records]
    for example, record in zip(examples, records, strict=True):
        assert list(example.labels) == list(KEYS)
        assert example.labels == labels_from_record(record)
        assert example.image.mode == "RGB"
        original = Image.open(io.BytesIO(record["image"]["bytes"])).convert("RGB")
        assert np.array_equal(np.asarray(example.image), np.asarray(original))


def test_plain_binary_image_column_is_accepted(tmp_path: Path, records: list[dict]) -> None:
    rows = [{**r, "image": r["image"]["bytes"]} for r in records[:5]]
    path = tmp_path / "binary.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    assert pq.ParquetFile(path).schema_arrow.field("image").type == pa.binary()
    examples = list(iter_examples(path))
    assert [e.id for e in examples] == [r["id"] for r in records[:5]]
    assert examples[0].labels["product_name"] == records[0]["productDisplayName"]


def test_rows_missing_a_label_are_skipped_with_a_warning(
    tmp_path: Path, records: list[dict], caplog: pytest.LogCaptureFixture
) -> None:
    rows = [dict(r) for r in records[:3]]
    rows[1]["usage"] = None
    path = tmp_path / "gaps.parquet"
    write_parquet(rows, path)
    assert [e.id for e in read_examples(path)] == [rows[0]["id"], rows[2]["id"]]
    assert "skipped 1 row" in caplog.text


def test_a_file_without_label_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"id": [1], "image": [b"x"]}), path)
    with pytest.raises(ValueError, match="lacks the column"):
        read_examples(path)


def _examples(count: int) -> list[Example]:
    image = Image.new("RGB", (4, 4))
    return [Example(id=i, image=image, labels={}) for i in range(count)]


def test_split_is_deterministic_disjoint_and_complete() -> None:
    examples = _examples(200)
    train, holdout = split_examples(examples, 0.2, seed=5)
    again = split_examples(list(reversed(examples)), 0.2, seed=5)
    assert len(holdout) == 40 and len(train) == 160
    assert {e.id for e in train}.isdisjoint(e.id for e in holdout)
    assert {e.id for e in train} | {e.id for e in holdout} == set(range(200))
    assert {e.id for e in again[1]} == {e.id for e in holdout}
    assert {e.id for e in split_examples(examples, 0.2, seed=6)[1]} != {e.id for e in holdout}


def test_split_edge_cases() -> None:
    assert split_examples(_examples(10), 0.0, seed=0)[1] == []
    assert len(split_examples(_examples(3), 0.01, seed=0)[1]) == 1
    with pytest.raises(ValueError, match="holdout_fraction"):
        split_examples(_examples(3), 1.0, seed=0)


@pytest.fixture
def synth_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # only the command under test is registered, so its test does not depend on the others' imports
    monkeypatch.setattr(cli, "COMMANDS", {"synth": cli.COMMANDS["synth"]})


@pytest.mark.usefixtures("synth_only")
def test_cli_writes_file_and_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, images = tmp_path / "s.parquet", tmp_path / "images"
    assert cli.main(["synth", "--n", "12", "--seed", "2", "--out", str(out), "--images-dir", str(images)]) == 0
    summary = capsys.readouterr().out.strip()
    assert summary.startswith("wrote 12 rows") and "classes covered" in summary and "\n" not in summary
    rows = pq.read_table(out).to_pylist()
    assert rows == list(synth_records(12, seed=2))
    for row in rows:
        assert (images / image_relpath(row)).read_bytes() == row["image"]["bytes"]


@pytest.mark.usefixtures("synth_only")
@pytest.mark.parametrize(
    ("n", "out_name", "message"),
    [
        ("0", "s.parquet", "--n must be"),
        ("-3", "s.parquet", "--n must be"),
        ("2", "absent/s.parquet", "not exist"),
    ],
)
def test_cli_refuses_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], n: str, out_name: str, message: str
) -> None:
    out = tmp_path / out_name
    assert cli.main(["synth", "--n", n, "--out", str(out)]) != 0
    error = capsys.readouterr().err.strip()
    assert message in error and "\n" not in error
    assert not out.exists()


@pytest.mark.usefixtures("synth_only")
def test_cli_reports_an_unwritable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "taken"
    out.mkdir()  # a folder where the file should go cannot be replaced by it
    assert cli.main(["synth", "--n", "2", "--out", str(out)]) != 0
    assert "cannot write" in capsys.readouterr().err
