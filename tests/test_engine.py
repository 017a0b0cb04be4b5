"""The inference engine: retries of bad outputs only, out-of-memory splitting, constrained validity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog_enrich.schema import KEYS, target_json
from vlm.data.synth import synth_records
from vlm.engine import Engine, retry_ladder
from vlm.generation import DecodingPlan
from vlm.loading import load_model

VALID = {
    "product_name": "Men Blue Tshirts",
    "product_type": "Tshirts",
    "color": "Blue",
    "gender": "Men",
    "season": "Summer",
    "usage": "Casual",
}


def images(n: int, seed: int = 5):
    from io import BytesIO

    from PIL import Image

    return [Image.open(BytesIO(r["image"]["bytes"])).convert("RGB") for r in synth_records(n, seed)]


def test_retry_ladder_escalates_to_constrained_with_more_tokens():
    plans = retry_ladder("free", 200, 4)
    assert [p.mode for p in plans] == ["free", "free", "constrained", "constrained"]
    assert plans[0].temperature == 0 and plans[1].temperature > 0
    assert plans[2].max_new_tokens > 200
    assert len({p.seed for p in plans if p.temperature > 0}) == 2


@pytest.fixture(scope="module")
def loaded(trained_model):
    return load_model(str(trained_model.base), trained_model.adapter, quantization="none")


def test_only_malformed_outputs_are_retried(loaded):
    calls: list[tuple[int, str]] = []

    def flaky(model, batch, plan: DecodingPlan):
        calls.append((len(batch), plan.mode))
        if len(calls) == 1:
            return ["not json", target_json(VALID), '{"product_name": "x"'][: len(batch)]
        return [target_json(VALID)] * len(batch)

    results = Engine(loaded, decoding="free", max_attempts=3, generate=flaky).enrich(images(3))
    assert calls == [(3, "free"), (2, "free")]
    assert [r.attempts for r in results] == [2, 1, 2]
    assert all(r.ok and r.attributes == VALID for r in results)
    assert {r.model_version for r in results} == {loaded.version}


def test_final_failure_keeps_reason_and_raw_output(loaded):
    results = Engine(loaded, max_attempts=2, generate=lambda m, b, p: ["I cannot help"] * len(b)).enrich(images(2))
    assert all(not r.ok and r.attempts == 2 and r.raw_output == "I cannot help" for r in results)
    assert all("no JSON object" in r.reason or "JSON" in r.reason for r in results)


def test_out_of_memory_splits_the_batch_instead_of_failing(loaded):
    served: list[int] = []
    refused: list[int] = []

    def small_memory(model, batch, plan):
        if len(batch) > 2:
            refused.append(len(batch))
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        served.append(len(batch))
        return [target_json(VALID)] * len(batch)

    engine = Engine(loaded, max_attempts=1, generate=small_memory)
    results = engine.enrich(images(7))
    assert all(r.ok for r in results) and len(results) == 7
    assert refused[0] == 7 and sum(served) == 7
    # the engine remembers what fits: the next batch is cut to size up front, without a new OOM
    refused.clear()
    assert all(r.ok for r in engine.enrich(images(6)))
    assert refused == []


def test_an_image_the_model_cannot_take_fails_alone(loaded):
    def picky(model, batch, plan):
        if any(image.size[0] == 77 for image in batch):
            if len(batch) == 1:
                raise ValueError("image processor refused it")
            raise ValueError("batch contains a bad image")
        return [target_json(VALID)] * len(batch)

    batch = images(4)
    batch[2] = batch[2].resize((77, 77))
    results = Engine(loaded, max_attempts=3, generate=picky).enrich(batch)
    assert [r.ok for r in results] == [True, True, False, True]
    assert "generation failed" in results[2].reason and results[2].attempts == 1


def test_trained_model_returns_valid_attributes_in_both_modes(loaded):
    batch = images(8, seed=42)
    for mode in ("free", "constrained"):
        results = Engine(loaded, decoding=mode, max_attempts=3).enrich(batch)
        assert all(r.ok for r in results), [r.reason for r in results]
        assert all(set(r.attributes) == set(KEYS) for r in results)


def test_batched_generation_matches_one_image_at_a_time(loaded):
    batch = images(4, seed=8)
    engine = Engine(loaded, decoding="free", max_attempts=1)
    together = [r.raw_output for r in engine.enrich(batch)]
    alone = [engine.enrich([image])[0].raw_output for image in batch]
    assert together == alone


def test_untrained_model_is_schema_valid_under_constrained_decoding(tmp_path: Path):
    from vlm.architectures import DEFAULT_ARCHITECTURE, build_tiny_model

    base = build_tiny_model(DEFAULT_ARCHITECTURE, tmp_path / "untrained", seed=3)
    engine = Engine(load_model(str(base), None, quantization="none"), decoding="constrained", max_attempts=1)
    batch = images(64, seed=11)
    results = []
    for start in range(0, len(batch), 32):
        results += engine.enrich(batch[start : start + 32])
    valid = sum(r.ok for r in results) / len(results)
    assert valid >= 0.99, [r.reason for r in results if not r.ok][:3]
    for result in results:
        if result.ok:
            json.loads(result.raw_output)


def test_grammar_enforces_every_length_limit(loaded):
    import xgrammar as xgr

    from catalog_enrich.schema import FIELDS_BY_NAME
    from vlm.constrained import compile_schema
    from vlm.generation import output_vocab_size

    tokenizer = loaded.processor.tokenizer
    compiled = compile_schema(tokenizer, output_vocab_size(loaded.model), loaded.prompter.stop_token_ids)
    limit = FIELDS_BY_NAME["product_name"].max_length
    for length, accepted in ((limit, True), (limit + 1, False)):
        attributes = dict(VALID, product_name="A" * length)
        assert xgr.GrammarMatcher(compiled).accept_string(target_json(attributes)) is accepted
    assert not xgr.GrammarMatcher(compiled).accept_string(target_json(dict(VALID, gender="Male")))
    assert not xgr.GrammarMatcher(compiled).accept_string(target_json(VALID).replace(":", ": ", 1))
