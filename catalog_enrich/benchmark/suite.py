"""Every measurement of ``catalog bench`` in one run, collected into one JSON-able dict.

Each section is measured on its own and a section that fails is reported under ``errors`` (its figure
left None) so one missing server does not cost the other figures. The headline figures sit at the top
level of the result; each section's full numbers sit under ``details``.
"""

from __future__ import annotations

import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from catalog_enrich.benchmark.machine import describe_machine
from catalog_enrich.benchmark.scratch import Services
from vlm.benchmark.bench_model import BENCH_SIZE, NetworkSize, build_bench_model

#: every section, in the order they run; ``gpu`` runs only when asked for
SECTIONS = ("engine", "constrained", "quantization", "db", "producer", "pipeline", "gpu")

#: sections that need the PostgreSQL, Redis and S3 servers
SERVICE_SECTIONS = frozenset({"db", "producer", "pipeline"})

#: sections that need the bench-size model
MODEL_SECTIONS = frozenset({"engine", "constrained", "quantization", "pipeline"})

#: the top-level figures, present in every result (None when their section was not measured)
HEADLINE_FIGURES = (
    "batched_speedup",
    "images_per_s_by_batch",
    "constrained_overhead",
    "quantization",
    "producer_keys_per_s",
    "producer_peak_rss_mb",
    "db_rows_per_s",
    "pipeline_efficiency",
)

Say = Callable[[str], None]


@dataclass(frozen=True, kw_only=True)
class BenchPlan:
    """How much of everything to measure.

    arch, size: the bench model (a tiny architecture's processor, resized network).
    images, single_images, batch_sizes, tokens: the batching comparison (``single_images`` for batch 1).
    overhead_images, overhead_batch_sizes, overhead_repeats: the constrained-decoding comparison, on up
    to two batches of each size drawn from ``overhead_images`` (the headline figure is the first size's).
    quant_images, quant_batch_size: each quantization mode's timing.
    producer_counts: bucket sizes the producer lists. db_rows: rows upserted per batch size.
    pipeline_images, pipeline_batch_size: the end-to-end comparison.
    gpu_batch_sizes, gpu_single_calls, gpu_shrink: the real-size models' batch sizes, how many calls
    time batch size 1, and toy sizes for a CPU check.
    precision: the bench model's dtype on the CPU (see ``vlm.precision``).
    """

    arch: str = "gemma3"
    size: NetworkSize = BENCH_SIZE
    images: int = 64
    single_images: int = 16
    batch_sizes: tuple[int, ...] = (1, 8, 16, 32, 64)
    tokens: int = 48
    overhead_images: int = 64
    overhead_batch_sizes: tuple[int, ...] = (16, 64)
    overhead_repeats: int = 2
    quant_images: int = 32
    quant_batch_size: int = 16
    producer_counts: tuple[int, ...] = (10_000, 100_000)
    db_rows: int = 2048
    pipeline_images: int = 64
    pipeline_batch_size: int = 16
    gpu_batch_sizes: tuple[int, ...] = (1, 8, 16, 32, 64)
    gpu_single_calls: int = 8
    gpu_shrink: bool = False
    image_seed: int = 3
    precision: str = "auto"


#: what ``--quick`` measures: the same figures on fewer images and smaller buckets
QUICK_PLAN = BenchPlan(
    images=16,
    single_images=4,
    batch_sizes=(1, 8, 16),
    overhead_images=16,
    overhead_batch_sizes=(16,),
    overhead_repeats=1,
    quant_images=8,
    quant_batch_size=8,
    tokens=32,
    producer_counts=(2_000, 10_000),
    db_rows=512,
    pipeline_images=16,
)


def bench_images(count: int, seed: int) -> list[Any]:
    """``count`` synthetic product images, decoded to RGB."""
    from io import BytesIO

    from PIL import Image

    from vlm.data.synth import synth_records

    return [Image.open(BytesIO(record["image"]["bytes"])).convert("RGB") for record in synth_records(count, seed)]


class _Run:
    """The state of one benchmark run: the plan, the servers, the model directory and the result."""

    def __init__(self, plan: BenchPlan, services: Services | None, model_dir: Path | None, say: Say) -> None:
        self.plan, self.services, self.model_dir, self.say = plan, services, model_dir, say
        self.result: dict[str, Any] = dict.fromkeys(HEADLINE_FIGURES) | {"details": {}, "errors": {}}
        self._loaded: Any = None

    def loaded(self) -> Any:
        """The bench model loaded in this process without quantization (once)."""
        if self._loaded is None:
            from vlm.loading import load_model

            self._loaded = load_model(str(self.model_dir), None, quantization="none", precision=self.plan.precision)
            if "model" in self.result:
                config = self._loaded.model.config
                self.result["model"] |= {
                    "dtype": str(self._loaded.dtype).removeprefix("torch."),
                    "attention": config._attn_implementation,
                }
        return self._loaded

    def release_model(self) -> None:
        """Drop the in-process model before a section that runs models in other processes."""
        import gc

        self._loaded = None
        gc.collect()

    def engine(self) -> None:
        from vlm.benchmark.throughput import batching_speedup, warm_up

        plan, images = self.plan, bench_images(self.plan.images, self.plan.image_seed)
        warm_up(self.loaded(), images)
        figures = batching_speedup(
            self.loaded(), images, batch_sizes=plan.batch_sizes, tokens=plan.tokens, single_images=plan.single_images
        )
        self.result |= {key: figures[key] for key in ("batched_speedup", "images_per_s_by_batch")}
        self.result["details"]["engine"] = figures

    def constrained(self) -> None:
        from vlm.benchmark.throughput import constrained_overhead, warm_up

        images = bench_images(self.plan.overhead_images, self.plan.image_seed)
        warm_up(self.loaded(), images)
        by_batch = {
            str(size): constrained_overhead(
                self.loaded(),
                images[: 2 * size],
                batch_size=size,
                repeats=self.plan.overhead_repeats,
            )
            for size in self.plan.overhead_batch_sizes
        }
        self.result["constrained_overhead"] = by_batch[str(self.plan.overhead_batch_sizes[0])]["constrained_overhead"]
        self.result["details"]["constrained"] = by_batch

    def quantization(self) -> None:
        from vlm.benchmark.quantization import compare_modes

        self.release_model()
        plan = self.plan
        figures = compare_modes(
            str(self.model_dir),
            images=plan.quant_images,
            batch_size=plan.quant_batch_size,
            tokens=plan.tokens,
            seed=plan.image_seed,
            precision=plan.precision,
        )
        self.result["quantization"] = figures

    def db(self) -> None:
        from catalog_enrich.benchmark.catalog_writes import measure_catalog_writes
        from catalog_enrich.benchmark.scratch import scratch_database

        assert self.services is not None
        with scratch_database(self.services.database_url) as database_url:
            figures = measure_catalog_writes(database_url, rows=self.plan.db_rows)
        self.result["db_rows_per_s"] = figures["db_rows_per_s"]
        self.result["details"]["db"] = figures

    def producer(self) -> None:
        from catalog_enrich.benchmark.producer_rate import measure_producer

        assert self.services is not None
        figures = measure_producer(self.services, self.plan.producer_counts)
        self.result |= {key: figures[key] for key in ("producer_keys_per_s", "producer_peak_rss_mb")}
        self.result["details"]["producer"] = figures

    def pipeline(self) -> None:
        from catalog_enrich.benchmark.pipeline import measure_pipeline

        assert self.services is not None
        self.release_model()
        plan = self.plan
        figures = measure_pipeline(
            self.services,
            str(self.model_dir),
            images=plan.pipeline_images,
            batch_size=plan.pipeline_batch_size,
            precision=plan.precision,
        )
        self.result["pipeline_efficiency"] = figures["pipeline_efficiency"]
        self.result["details"]["pipeline"] = figures

    def gpu(self) -> None:
        from vlm.benchmark.gpu_run import measure_model
        from vlm.benchmark.real_size import REAL_SIZE_MODELS
        from vlm.loading import pick_device

        self.release_model()
        device, plan = pick_device(), self.plan
        if device.type != "cuda" and not plan.gpu_shrink:
            raise RuntimeError("no CUDA device: --gpu needs one (--gpu-tiny-configs checks the code path on a CPU)")
        images = bench_images(8, plan.image_seed)
        self.result["gpu"] = {"shrunk_configs": plan.gpu_shrink}
        for name in REAL_SIZE_MODELS:
            self.say(f"gpu: {name}")
            self.result["gpu"][name] = measure_model(
                name,
                images,
                device,
                batch_sizes=plan.gpu_batch_sizes,
                tokens=plan.tokens,
                single_calls=plan.gpu_single_calls,
                shrink=plan.gpu_shrink,
            )


def run_bench(plan: BenchPlan, sections: Sequence[str], services: Services | None, say: Say) -> dict[str, Any]:
    """Measure ``sections`` as ``plan`` says; ``services`` is needed by the db, producer and pipeline sections."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    machine = describe_machine()
    with tempfile.TemporaryDirectory(prefix="catalog-bench-") as folder:
        model_dir = None
        if MODEL_SECTIONS & set(sections):
            model_dir = build_bench_model(plan.arch, Path(folder) / "model", plan.size)
        run = _Run(plan, services, model_dir, say)
        run.result |= {"machine": machine, "date": machine["date"], "git_commit": machine["git_commit"]}
        run.result["plan"] = asdict(plan)
        if model_dir is not None:
            run.result["model"] = _model_facts(model_dir)
        for section in (name for name in SECTIONS if name in sections):
            say(f"measuring {section}")
            started = time.perf_counter()
            try:
                getattr(run, section)()
            except Exception as error:
                run.result["errors"][section] = f"{type(error).__name__}: {error}"
                say(f"{section} failed: {traceback.format_exc(limit=3)}")
            run.result.setdefault("section_s", {})[section] = round(time.perf_counter() - started, 1)
    return run.result


def _model_facts(model_dir: Path) -> dict[str, Any]:
    """The bench model's architecture and parameter count, from the metadata saved with it."""
    import json

    from vlm.architectures import METADATA_FILE

    facts = json.loads((model_dir / METADATA_FILE).read_text())
    return {"arch": facts["arch"], "parameters": facts["parameters"], "weights": "random"}
