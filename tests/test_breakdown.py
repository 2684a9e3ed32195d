"""The per-call breakdown benchmark runs end to end at a tiny size; speed is never tested."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.breakdown import available

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_run_reports_every_installed_contender_and_the_target_ratios(tmp_path: Path) -> None:
    """`python -m benchmarks.breakdown --quick` gives a cost per call for every installed
    contender, aiolog's included, and the two target ratios."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.breakdown", "--quick", "--n", "200",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    document = json.loads((tmp_path / "breakdown.json").read_text())
    assert list(document["results"]) == available()
    for name, result in document["results"].items():
        assert result.get("us_per_call", 0) > 0, (name, result)
    assert "python-json-logger / aiolog JSON" in document["ratios"] or \
        "python-json-logger + FileHandler" not in available()
    assert "| contender | µs/call | ratio |" in proc.stdout
