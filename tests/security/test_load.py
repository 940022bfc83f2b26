"""Load, the CI size: bench/load.py with 10 analysts for 15 s (the 2-minute, 50-analyst run
is in BENCHMARKS.md). Performance is the benchmark's business; this test holds the rules
under load: no error but intended budget refusals, the upload and the match mid-run
succeed, and the budget ledger agrees exactly with what the analysts were told."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.load

BENCH = Path(__file__).resolve().parents[2] / "bench" / "load.py"
SIZE = ["--users", "10", "--seconds", "15", "--persons", "1500"]


def test_ten_analysts_for_fifteen_seconds_with_an_upload_and_a_match(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, str(BENCH), *SIZE, "--out", str(tmp_path / "group"), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.exists(), done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["errors"] == 0, result["error_samples"]
    assert set(result["outcomes"]) <= {"fresh", "cached", "budget_refused"}
    assert result["outcomes"]["fresh"] > 0 and result["requests"] > 50
    assert {k: v["status"] for k, v in result["mid_run"].items()} == {"upload": 201, "match": 201}
    assert result["ledger"]["ok"], result["ledger"]["problems"]
    assert result["told_equals_charged"]  # sum of charges == epsilons of fresh answers
    assert result["max_share_used"] <= 1
    assert done.returncode == 0
    q = result["latency_ms"]["all queries"]
    print(
        f"load (CI): {result['users']} analysts, {result['wall_s']} s, {result['requests']} "
        f"queries ({result['requests_per_s']}/s), outcomes {result['outcomes']}, "
        f"p50 {q['p50']} ms, p99 {q['p99']} ms, errors 0, ledger consistent"
    )
