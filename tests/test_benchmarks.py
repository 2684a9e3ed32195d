"""The benchmarks run end to end at tiny sizes; how fast anything is, is never tested here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.contenders import CONTENDERS
from benchmarks.__main__ import SCENARIOS, merge_runs

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_every_scenario_runs_for_every_installed_contender(tmp_path: Path) -> None:
    """`python -m benchmarks --quick` fills every scenario for each contender it can run, and
    aiolog loses, doubles, tears and misplaces nothing in any of them."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert (tmp_path / "results.png").stat().st_size > 0
    assert set(results) == set(SCENARIOS)
    installed = {c.name for c in CONTENDERS if c.available()}
    assert set(results["throughput"]) == set(results["per_call"]) == installed
    assert "no logging" in results["stall"]
    for scenario, by_name in results.items():
        for name, outcome in by_name.items():
            if name in ("aiolog", "aiolog+uvloop"):
                assert "error" not in outcome, (scenario, name, outcome)
    for name in ("aiolog", "aiolog+uvloop"):
        assert results["throughput"][name]["rotation_on"]["lost"] == 0
        assert results["stall"][name]["lost"] == 0
        shared = results["shared"][name]
        assert (shared["lost"], shared["duplicated"], shared["torn"], shared["misplaced"]) == (0, 0, 0, 0)
    assert "records/s" in proc.stdout and "| contender" in proc.stdout


def test_repeated_runs_merge_to_medians_and_keep_every_loss() -> None:
    """A noisy run moves no reported number alone; a loss or failure in any run is reported."""
    def stall(lag_max: float, lost: int) -> dict[str, float]:
        return {"lag_p99_ms": lag_max / 2, "lag_max_ms": lag_max, "sent": 100, "lost": lost}

    merged = merge_runs("stall", [stall(3.0, 0), stall(40.0, 2), stall(4.0, 0)])
    assert merged == {"lag_p99_ms": 2.0, "lag_max_ms": 4.0, "lag_worst_ms": 40.0,
                      "sent": 300, "lost": 2}
    rates = [{"rotation_off": {"records_per_s": r, "lost": lost}} for r, lost in ((9, 0), (1, 5), (5, 0))]
    assert merge_runs("throughput", rates) == {"rotation_off": {"records_per_s": 5, "lost": 5}}
    assert merge_runs("stall", [stall(3.0, 0), {"error": "x exited with 1"}]) == {"error": "x exited with 1"}
