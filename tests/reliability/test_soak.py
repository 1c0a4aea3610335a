"""A short soak (``benchmarks/reliability.py --soak-seconds`` is the long one): one backend
process, webhook events and /predict calls against a real Label Studio; memory stays flat
and nothing is lost. Latency is measured by the benchmark, never asserted here."""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import LABEL_STUDIO_TESTS_2, REPO

pytestmark = [*LABEL_STUDIO_TESTS_2, pytest.mark.slow]


def test_short_soak_holds(label_studio, tmp_path):
    spec = importlib.util.spec_from_file_location("galton_reliability_bench", REPO / "benchmarks" / "reliability.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.soak(label_studio.url, label_studio.token, 20.0, n_tasks=120, webhooks_per_s=10, workdir=tmp_path)
    assert result["webhooks"] > 50 and result["predicts"] > 20 and result["errors"] == 0
    assert result["rss_mb"]["end"] < result["rss_mb"]["start"] * 1.25 + 20  # flat: no growth with the events
    assert result["predictions_mismatched"] == 0 and result["meta_mismatched"] == 0 and result["duplicates"] == 0
