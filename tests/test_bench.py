"""``catalog bench`` runs on toy sizes and reports every figure with the right keys and types.

These tests check that the measuring code works, never what it measures: the figures themselves come
from a full ``catalog bench`` run, printed side by side.
"""

from __future__ import annotations

import json

import pytest

from catalog_enrich.benchmark.report import format_report
from catalog_enrich.benchmark.scratch import Services
from catalog_enrich.benchmark.suite import HEADLINE_FIGURES, BenchPlan, run_bench
from catalog_enrich.cli import main
from catalog_enrich.settings import S3Settings, normalize_database_url
from vlm.benchmark.bench_model import SMOKE_SIZE

#: the smallest plan that still exercises every code path
SMOKE_PLAN = BenchPlan(
    size=SMOKE_SIZE,
    images=4,
    single_images=2,
    batch_sizes=(1, 2, 4),
    tokens=3,
    overhead_images=4,
    overhead_batch_sizes=(4, 2),
    quant_images=2,
    quant_batch_size=2,
    producer_counts=(20, 50),
    db_rows=32,
    pipeline_images=4,
    pipeline_batch_size=4,
    gpu_batch_sizes=(1, 2),
    gpu_single_calls=1,
    gpu_shrink=True,
)


def positive(value: object) -> bool:
    return isinstance(value, float | int) and not isinstance(value, bool) and value > 0


def say(message: str) -> None:
    print(message)


@pytest.mark.slow
def test_model_sections_report_every_figure():
    result = run_bench(SMOKE_PLAN, ["engine", "constrained", "quantization"], None, say)
    assert result["errors"] == {}
    assert set(HEADLINE_FIGURES) <= set(result)
    assert set(result["images_per_s_by_batch"]) == {"1", "2", "4"}
    assert all(positive(rate) for rate in result["images_per_s_by_batch"].values())
    assert positive(result["batched_speedup"])
    assert isinstance(result["constrained_overhead"], float)
    assert set(result["details"]["constrained"]) == {"4", "2"}
    assert set(result["quantization"]) == {"nf4", "int8", "none"}
    for figures in result["quantization"].values():
        assert positive(figures["images_per_s"]) and figures["peak_memory_mb"] >= 0
    assert result["model"]["parameters"] > 0 and result["machine"]["cpu_cores"] >= 1
    assert result["date"] and "git_commit" in result
    json.dumps(result)
    assert "batched speed-up" in format_report(result)


def test_real_size_path_runs_on_shrunk_configs():
    result = run_bench(SMOKE_PLAN, ["gpu"], None, say)
    assert result["errors"] == {}
    gpu = result["gpu"]
    assert gpu["shrunk_configs"] is True
    for name in ("llama-3.2-11b-vision", "qwen2-vl-7b"):
        figures = gpu[name]
        assert figures["parameters"] > 0 and figures["quantization"] == "nf4"
        assert set(figures["by_batch"]) == {"1", "2"}
        assert all(positive(row["images_per_s"]) for row in figures["by_batch"].values())
        assert positive(figures["batched_speedup"])
    assert "qwen2-vl-7b" in format_report(result)


def test_published_sizes_are_the_real_ones():
    from vlm.benchmark.real_size import llama_vision_11b, qwen2_vl_7b

    llama = llama_vision_11b().config
    assert (llama.text_config.hidden_size, llama.text_config.num_hidden_layers) == (4096, 40)
    assert llama.text_config.cross_attention_layers == [3, 8, 13, 18, 23, 28, 33, 38]
    assert (llama.vision_config.image_size, llama.vision_config.max_num_tiles) == (560, 4)
    qwen = qwen2_vl_7b().config
    assert (qwen.text_config.hidden_size, qwen.text_config.vocab_size) == (3584, 152064)
    assert (qwen.vision_config.embed_dim, qwen.vision_config.depth) == (1280, 32)


def test_command_line_refuses_bad_combinations(capsys):
    assert main(["bench", "--sections", "engine,nonsense"]) == 2
    assert main(["bench", "--gpu-tiny-configs"]) == 2
    assert "only applies with --gpu" in capsys.readouterr().err


@pytest.fixture
def services(service_env) -> Services:
    return Services(
        database_url=normalize_database_url(service_env["CATALOG_DATABASE_URL"]),
        broker_url=service_env["CATALOG_BROKER_URL"],
        s3=S3Settings(
            endpoint_url=service_env["AWS_ENDPOINT_URL_S3"],
            access_key_id=service_env["AWS_ACCESS_KEY_ID"],
            secret_access_key=service_env["AWS_SECRET_ACCESS_KEY"],
        ),
    )


@pytest.mark.services
@pytest.mark.slow
def test_service_sections_report_every_figure(services):
    result = run_bench(SMOKE_PLAN, ["db", "producer", "pipeline"], services, say)
    assert result["errors"] == {}
    assert set(result["db_rows_per_s"]) == {"16", "64"}
    assert all(positive(rate) for rate in result["db_rows_per_s"].values())
    assert positive(result["producer_keys_per_s"])
    assert set(result["producer_peak_rss_mb"]) == {"20", "50"}
    assert all(positive(mb) for mb in result["producer_peak_rss_mb"].values())
    assert positive(result["pipeline_efficiency"])
    assert result["details"]["pipeline"]["done"] + result["details"]["pipeline"]["dead_lettered"] == 4
    assert "pipeline efficiency" in format_report(result)


@pytest.mark.services
def test_command_writes_the_json(services, service_env, tmp_path, monkeypatch):
    for name, value in service_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CATALOG_HOME", str(tmp_path / "home"))
    out = tmp_path / "bench.json"
    assert main(["bench", "--sections", "db", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(HEADLINE_FIGURES) <= set(result) and result["quick"] is False
    assert positive(result["db_rows_per_s"]["64"])
    assert result["pipeline_efficiency"] is None
