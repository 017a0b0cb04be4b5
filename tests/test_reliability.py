"""The reliability suite at its quick size: every scenario against real workers and servers.

Each scenario must complete with nothing lost, nothing duplicated and nothing invalid in the catalog, and
show the behaviour it exists for (re-executions after kills, the reaper's resends, dead letters with
reasons). The suite's servers run on ports of their own, so tests may stop and flush them.
"""

from __future__ import annotations

import pytest
from conftest import TEST_HOME, unavailable

from catalog_enrich.reliability.harness import Harness, Model
from catalog_enrich.reliability.scenarios import QUICK, SCENARIOS, ScenarioResult

#: apart from the command's own ports, so the suite can run while a test run does
TEST_PORTS = {"CATALOG_POSTGRES_PORT": "54369", "CATALOG_REDIS_PORT": "63794", "CATALOG_S3_PORT": "18403"}


@pytest.fixture(scope="module")
def harness(trained_model, tmp_path_factory) -> Harness:
    from catalog_enrich.services.process import ServiceError

    suite = Harness(
        TEST_HOME, Model(trained_model.base, trained_model.adapter), tmp_path_factory.mktemp("logs"), TEST_PORTS
    )
    try:
        suite.up()
    except (ServiceError, OSError) as error:
        unavailable(str(error))
    return suite


def run(harness: Harness, name: str) -> ScenarioResult:
    result = SCENARIOS[name](harness, QUICK)
    tally = result.tally
    assert result.completed, f"{name} did not complete: {result.as_dict()}"
    assert (tally.lost, tally.duplicated, tally.invalid) == (0, 0, 0), result.as_dict()
    assert tally.enriched + tally.dead_lettered == tally.items > 0
    return result


def test_a_worker_killed_mid_batch_loses_nothing(harness):
    result = run(harness, "worker-killed")
    assert result.notes["kills"] == QUICK.kills
    # the killed workers' batches ran again elsewhere
    assert result.tally.re_executed > 0 and result.tally.enriched == result.tally.items


def test_a_batch_outliving_the_visibility_timeout_runs_twice_with_one_effect(harness):
    result = run(harness, "visibility-timeout")
    assert result.tally.re_executed >= 1 and result.tally.enriched == result.tally.items


def test_a_redis_restart_mid_run_loses_no_message(harness):
    result = run(harness, "redis-restarted")
    assert result.tally.enriched == result.tally.items


def test_a_wiped_redis_is_recovered_from_the_ledger_by_the_reaper(harness):
    result = run(harness, "redis-wiped")
    assert result.tally.recovered > 0 and result.tally.enriched == result.tally.items


def test_a_postgres_outage_is_waited_out(harness):
    result = run(harness, "postgres-outage")
    assert result.tally.enriched == result.tally.items


def test_objects_deleted_after_listing_are_dead_lettered_as_gone(harness):
    result = run(harness, "s3-deleted")
    assert result.tally.dead_lettered == result.notes["deleted"] == result.notes["gone_dead_lettered"] > 0


def test_s3_throttling_is_retried_until_every_image_is_in(harness):
    result = run(harness, "s3-throttled")
    assert result.notes["throttled_requests"] > 0 and result.tally.enriched == result.tally.items


def test_refused_credentials_fail_with_a_reason_then_complete_once_fixed(harness):
    result = run(harness, "s3-bad-credentials")
    assert result.notes["failed_with_reason"] == result.tally.items
    assert "refused the worker's credentials" in result.notes["reason"] and not result.notes["secret_in_reasons"]
    assert result.tally.enriched == result.tally.items and result.tally.recovered == result.tally.items


def test_a_poison_image_is_dead_lettered_and_its_batch_mates_are_enriched(harness):
    result = run(harness, "poison-batch")
    assert result.tally.dead_lettered == result.notes["poison_dead_lettered"] == 1
    assert result.tally.enriched == result.tally.items - 1 and result.notes["worker_alive"]


def test_hostile_images_are_enriched_or_refused_with_a_reason(harness):
    result = run(harness, "hostile-images")
    assert result.notes["unexpected_outcomes"] == [] and result.notes["worker_alive"]
    assert result.notes["worker_peak_rss_mb"] < 2048
    assert all(reason.startswith("bad image: ") for reason in result.notes["reasons"].values())
    assert "pixel limit" in result.notes["reasons"]["over-pixel-limit.png"]


def test_a_misbehaving_model_never_reaches_the_catalog(harness):
    result = run(harness, "misbehaving-model")
    assert result.tally.dead_lettered > 0 and result.notes["enriched_after_retry"] > 0
    assert result.notes["dead_letters_without_raw_output"] == 0


def test_four_workers_account_for_every_image_exactly_once(harness):
    result = run(harness, "many-workers")
    assert result.tally.items == QUICK.many_workers_images == result.tally.enriched
