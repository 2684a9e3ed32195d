"""The JSON-lines benchmark runs end to end at a tiny size; how fast anything is, is never tested."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.json_lines import CONTENDERS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_run_covers_every_installed_contender_and_aiolog_loses_nothing(tmp_path: Path) -> None:
    """`python -m benchmarks.json_lines --quick` reports every installed contender, and
    aiolog's JSON lines are all there and valid."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.json_lines", "--quick", "--n", "300",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((tmp_path / "json_lines.json").read_text())["results"]
    installed = {name for name, module in CONTENDERS.items() if importlib.util.find_spec(module)}
    assert set(results) == installed
    for name in ("aiolog JSON (orjson)", "aiolog JSON (stdlib json)"):
        if name in results:
            assert "error" not in results[name], results[name]
            assert results[name]["lost"] == 0
            assert results[name]["records_per_s"] > 0
    assert "| contender | records/s |" in proc.stdout
