"""The builtin backend's cost table: GB-s from durations and the template's memory, USD from the price."""

from __future__ import annotations

import pytest

from benchmarks import bench_builtin


def test_a_million_gb_seconds_and_requests_cost_what_the_price_says() -> None:
    assert bench_builtin._cost(1.0, 0) == pytest.approx(13.3334)  # 1 GB-s per image, 1M images
    assert bench_builtin._cost(0, 1) == pytest.approx(0.20)  # one request per image


def test_the_table_bills_both_functions_for_the_inference_and_the_ingest_for_its_wait() -> None:
    path = {"pose/1": {"ingest_total_ms": 200.0, "ingest_own_ms": 120.0, "inference_wait_ms": 80.0,
                       "inference_handler_ms": 70.0}}  # fmt: skip
    function = {"pose/1": {"init_ms": 150.0, "init_cpu_ms": 140.0, "first_ms": 90.0, "steady_ms": 68.0,
                           "steady_p90_ms": 70.0, "peak_rss_mb": 136.0, "detections": 2}}  # fmt: skip
    table = bench_builtin._markdown(function, path, {"IngestFunction": 1024, "InferenceFunction": 2048})

    builtin_gbs = 0.2 * 1.0 + 0.07 * 2.0  # ingest (1 GB) with its wait + inference (2 GB)
    assert f"| {builtin_gbs:.4f} | ${bench_builtin._cost(builtin_gbs, 1.2):.2f} |" in table
    assert f"| {0.12:.4f} | ${bench_builtin._cost(0.12, 0.2):.2f} |" in table  # the roboflow backend's share
    assert "| 240 |" in table  # cold start: init + first answer
