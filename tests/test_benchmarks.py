"""The benchmarks run end to end at tiny sizes; how fast anything is, is never tested here."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks import report
from benchmarks.contenders import CONTENDERS
from benchmarks.__main__ import COMMITTED, LATEST, SCENARIOS, merge_runs, parse_args
from benchmarks.shared_file import audit

ROOT = Path(__file__).resolve().parent.parent
OURS = ("aiolog", "aiolog+uvloop")


def _git_status() -> str | None:
    """The checkout's changes as git sees them, or None outside a git checkout."""
    if shutil.which("git") is None:
        return None
    proc = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    return proc.stdout if proc.returncode == 0 else None


@pytest.mark.slow
def test_every_scenario_runs_for_every_installed_contender(tmp_path: Path) -> None:
    """`python -m benchmarks --smoke` fills every scenario for each contender it can run, aiolog
    loses, doubles, tears and misplaces nothing in any of them, and the checkout is left as it was."""
    before = _git_status()
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert (tmp_path / "results.png").stat().st_size > 0
    assert set(results) == {*SCENARIOS, "stopped_reader"}  # scenario 3's second part: 3b
    for name in ("aiolog", "aiolog-uvloop"):  # a pipe whose reader stops never freezes its loop
        assert not results["stopped_reader"][name].get("froze"), results["stopped_reader"][name]
    installed = {c.name for c in CONTENDERS if c.available()}
    assert set(results["throughput"]) == set(results["per_call"]) == installed
    assert set(results["timed"]) == {c.name for c in CONTENDERS if c.available() and c.timed}
    assert "no logging" in results["stall"]
    for name in ("aiolog JSON (orjson)", "aiolog JSON (stdlib json)"):
        assert results["json"][name]["lost"] == 0 and "error" not in results["json"][name]
    for scenario, by_name in results.items():
        for name, outcome in by_name.items():
            if name in ("aiolog", "aiolog+uvloop"):
                assert "error" not in outcome, (scenario, name, outcome)
    for name in ("aiolog", "aiolog+uvloop"):
        assert results["throughput"][name]["rotation_on"]["lost"] == 0
        assert results["stall"][name]["lost"] == 0
        for scenario in ("shared", "timed"):
            r = results[scenario][name]
            assert r["records"] > 0 and r["files"] >= 2, (scenario, name)  # it did rotate
            assert (r["lost"], r["duplicated"], r["torn"], r["misplaced"]) == (0, 0, 0, 0), (scenario, name)
    assert "records/s" in proc.stdout and "| contender" in proc.stdout
    assert "5. Processes sharing one file rotated by time" in proc.stdout
    assert _git_status() == before


def test_a_plain_run_writes_where_git_ignores_and_only_updating_writes_the_committed_results() -> None:
    """By default results go to a directory git ignores; only --update-results targets the
    committed ones, and never with --quick or --smoke sizes; --help shows every default."""
    assert parse_args([]).out == LATEST
    assert parse_args(["--update-results"]).out == COMMITTED
    for small in ("--quick", "--smoke"):
        with pytest.raises(SystemExit):
            parse_args([small, "--update-results"])
    text = subprocess.run([sys.executable, "-m", "benchmarks", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60).stdout
    assert "(default: 50000)" in text and "(default: 3)" in text
    if _git_status() is None:
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", str(LATEST / "results.json")],
                             cwd=ROOT, timeout=60)
    assert ignored.returncode == 0


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


def test_the_chart_highlights_aiologs_own_contenders_only(tmp_path: Path) -> None:
    """aiolog and aiolog+uvloop are drawn in the highlight colour, peers whose names merely start
    with "aiolog" are not, and a chart with correctness beside speed is drawn."""
    assert {report.colour(n) for n in OURS} == {"tab:green"}
    assert "tab:green" not in {report.colour(n) for n in ("aiologger", "aiologging", "logging")}
    report.chart(_document()["results"], tmp_path / "chart.png", "test run")
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")


def test_repeated_multiprocess_runs_merge_to_median_speed_and_total_faults() -> None:
    """Repeated runs of scenarios 4 and 5 report the median records/s and every fault of every
    run, against the records audited in all of them."""
    def run(rate: float, lost: int, misplaced: int, latest: float) -> dict[str, Any]:
        return {"records_per_s": rate, "records": 1000, "lost": lost, "duplicated": 0, "torn": 1,
                "misplaced": misplaced, "misplaced_latest_s": latest, "files": 3}

    for scenario in ("shared", "timed"):
        merged = merge_runs(scenario, [run(10, 0, 0, 0.0), run(90, 5, 7, 0.2), run(20, 0, 1, 0.1)])
        assert merged == {"records_per_s": 20, "records": 3000, "lost": 5, "duplicated": 0,
                          "torn": 3, "misplaced": 8, "misplaced_latest_s": 0.2, "files": 9,
                          "runs": 3}
        assert merge_runs(scenario, [run(10, 0, 0, 0.0), {"error": "x exited with 1"}]) == {
            "error": "x exited with 1"}


def _line(worker: int, seq: int, created: float) -> bytes:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
    return f"{stamp},000 INFO bench: w{worker} seq {seq} at {created:.6f}\n".encode()


def test_audit_counts_lost_duplicated_torn_and_misplaced_records_per_worker(tmp_path: Path) -> None:
    """The audit finds each fault in real files: a missing record, a doubled one, a torn line, and
    a record created after its file was rotated away, for workers that logged different counts."""
    rotated_at = 1_700_000_000.0
    old = tmp_path / "app.log.1"
    old.write_bytes(_line(0, 0, rotated_at - 1) + _line(0, 1, rotated_at + 0.25)
                    + _line(1, 0, rotated_at - 1) + b"w1 seq 1 at 17")
    (tmp_path / "app.log").write_bytes(_line(1, 0, rotated_at + 1) + _line(1, 2, rotated_at + 1))
    (tmp_path / "app.log.lock").write_text("not a log")
    result = audit(tmp_path, [2, 4], {old.stat().st_ino: rotated_at})
    # worker 1 logged seq 0..3: 1 is torn (so lost), 3 never arrived; seq 0 is in both files.
    assert result == {"records": 6, "lost": 2, "duplicated": 1, "torn": 1, "misplaced": 1,
                      "misplaced_latest_s": pytest.approx(0.25), "files": 2}


def _document() -> dict[str, Any]:
    audited = {"records_per_s": 1000.0, "records": 200_000, "lost": 0, "duplicated": 0,
               "torn": 0, "misplaced": 0, "misplaced_latest_s": 0.0, "runs": 1}
    return {
        "run": {"name": "2026-01-02 03:04 UTC at abc1234", "non_default": {}, "seconds": 1800},
        "machine": {"cpu": "Test CPU", "cores": 2, "python": "3.11", "system": "Linux"},
        "settings": {"processes": 4, "shared_records": 50_000},
        "results": {
            "stall": {"logging": {"lag_p99_ms": 5.0, "lag_max_ms": 301.4, "lag_worst_ms": 310.0,
                                  "sent": 100, "lost": 0}},
            "shared": {"aiolog": dict(audited),
                       "logging": audited | {"lost": 17_400, "misplaced": 120_000,
                                             "misplaced_latest_s": 0.9}},
            "timed": {"aiolog": dict(audited),
                      "logging": audited | {"lost": 155_600, "misplaced": 2_000,
                                            "misplaced_latest_s": 0.5}},
        },
    }


README_TEXT = """# project

<!-- benchmarks:headline (generated) -->
8.7 % typed by hand
<!-- /benchmarks:headline -->

## Benchmarks

Prose the generator must keep.

<!-- benchmarks:tables (generated) -->
old tables
<!-- /benchmarks:tables -->

Notes after the block.
"""


def test_readme_blocks_are_redrawn_from_the_results_and_nothing_else_changes() -> None:
    """The README's opening figures and tables come from the named run's results, the text
    around the markers stays as written, and redrawing twice changes nothing more."""
    document = _document()
    updated = report.update_readme(README_TEXT, copy.deepcopy(document))
    headline = updated.split("<!-- /benchmarks:headline -->")[0].replace("\n", " ")
    assert "2026-01-02 03:04 UTC at abc1234" in headline
    assert "`RotatingFileHandler` lost 8.7 % of the records and wrote 60.0 % into files" in headline
    assert "`TimedRotatingFileHandler`, rotating every second, lost 77.8 % of the" in headline
    assert "froze the event loop for 301 ms whenever" in headline
    assert "aiolog lost, duplicated, tore and misplaced none" in headline
    assert "typed by hand" not in updated and "old tables" not in updated
    assert report.table(document["results"]).split("\n", 1)[1].split("\n\n")[0] in updated
    assert "17,400 (8.7 %)" in updated and "30 minutes" in updated
    assert updated.startswith("# project\n\n<!-- benchmarks:headline (generated) -->\n")
    assert "\n## Benchmarks\n\nProse the generator must keep.\n\n<!-- benchmarks:tables" in updated
    assert updated.endswith("<!-- /benchmarks:tables -->\n\nNotes after the block.\n")
    assert report.update_readme(updated, copy.deepcopy(document)) == updated


def test_a_readme_without_the_markers_is_refused() -> None:
    """Redrawing a README that lost a block's markers raises instead of leaving stale figures."""
    with pytest.raises(ValueError, match="tables"):
        report.update_readme(README_TEXT.split("## Benchmarks")[0], _document())


def test_the_committed_readme_agrees_with_the_committed_results() -> None:
    """The README's opening figures and tables are exactly what the committed run's results
    give (run `python -m benchmarks --update-readme` after changing either)."""
    readme = (ROOT / "README.md").read_text()
    document = json.loads((COMMITTED / "results.json").read_text())
    assert report.update_readme(readme, document) == readme
