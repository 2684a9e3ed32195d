"""Turn results into a terminal table (Markdown, so the README can show it) and a chart."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

BASELINE = "logging"  # FileHandler, or RotatingFileHandler with rotation on
SHARED_BASELINE = "concurrent-log-handler"


def machine() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


def summary(scenario: str, outcome: dict[str, Any]) -> str:
    """One line for the progress output."""
    if "error" in outcome:
        return f"failed: {outcome['error']}"
    if scenario == "throughput":
        return "  ".join(f"rotation {key[9:]}: {value['records_per_s']:,.0f} records/s"
                         for key, value in outcome.items())
    if scenario == "per_call":
        return f"p50 {outcome['p50_us']:.1f} us  p99 {outcome['p99_us']:.1f} us"
    if scenario == "stall":
        return f"max lag {outcome['lag_max_ms']:.1f} ms  lost {outcome['lost']}"
    return (f"{outcome['records_per_s']:,.0f} records/s  lost {outcome['lost']}  "
            f"misplaced {outcome['misplaced']}")


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value and base else "-"


def _get(outcome: dict[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if not isinstance(outcome, dict) or key not in outcome:
            return None
        outcome = outcome[key]
    return outcome


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _rows(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def table(results: dict[str, dict[str, Any]]) -> str:
    parts = []
    if "throughput" in results:
        data = results["throughput"]
        base_off = _get(data.get(BASELINE), "rotation_off", "records_per_s")
        base_on = _get(data.get(BASELINE), "rotation_on", "records_per_s")
        rows = []
        for name, r in data.items():
            off = _get(r, "rotation_off", "records_per_s")
            on = _get(r, "rotation_on", "records_per_s")
            lost = max(_get(r, "rotation_off", "lost") or 0, _get(r, "rotation_on", "lost") or 0)
            rows.append([name, _fmt(off, ",.0f"), _ratio(off, base_off), _fmt(on, ",.0f"),
                         _ratio(on, base_on), str(lost)])
        parts.append("1. One process, records to disk (records/s, median of the runs; ratio to "
                     "logging's FileHandler, or RotatingFileHandler with rotation on)\n" + _rows(
                         ["contender", "rotation off", "ratio", "rotation on", "ratio", "lost"],
                         rows))
    if "per_call" in results:
        rows = [[name, _fmt(r.get("p50_us"), ".1f"), _fmt(r.get("p99_us"), ".1f"),
                 _fmt(r.get("max_us"), ",.0f")] for name, r in results["per_call"].items()]
        parts.append("2. One log call inside the event loop (microseconds)\n"
                     + _rows(["contender", "p50", "p99", "max"], rows))
    if "stall" in results:
        rows = [[name, _fmt(r.get("lag_p99_ms"), ".2f"), _fmt(r.get("lag_max_ms"), ".2f"),
                 _fmt(r.get("lag_worst_ms"), ".2f"), _fmt(r.get("sent"), ",d"),
                 _fmt(r.get("lost"), "d")] for name, r in results["stall"].items()]
        parts.append("3. Sink stalls 400 ms of every second: event-loop lag (ms; p99 and max are "
                     "medians of the runs, worst is the largest max of any run), records logged "
                     "(a peer whose calls wait logs fewer) and lost\n"
                     + _rows(["contender", "lag p99", "lag max", "worst", "logged", "lost"], rows))
    if "shared" in results:
        data = results["shared"]
        base = _get(data.get(SHARED_BASELINE), "records_per_s")
        rows = [[name, _fmt(r.get("records_per_s"), ",.0f"), _ratio(r.get("records_per_s"), base),
                 _fmt(r.get("lost"), "d"), _fmt(r.get("duplicated"), "d"), _fmt(r.get("torn"), "d"),
                 _fmt(r.get("misplaced"), "d"), _fmt(r.get("misplaced_latest_s"), ".3f")]
                for name, r in data.items()]
        parts.append("4. Processes sharing one rotating file (aggregate records/s; ratio to "
                     "concurrent-log-handler; misplaced = written into a file already rotated "
                     "away, and how late)\n" + _rows(
                         ["contender", "records/s", "ratio", "lost", "duplicated", "torn",
                          "misplaced", "latest s"], rows))
    return "\n\n".join(parts)


def chart(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("throughput", "records/s, one process, rotation on",
         lambda r: _get(r, "rotation_on", "records_per_s") or _get(r, "rotation_off", "records_per_s")),
        ("per_call", "p99 microseconds per log call", lambda r: r.get("p99_us")),
        ("stall", "max event-loop lag, stalled sink (ms)", lambda r: r.get("lag_max_ms")),
        ("shared", "records/s, processes sharing one file", lambda r: r.get("records_per_s")),
    ]
    panels = [p for p in panels if p[0] in results]
    figure, axes = plt.subplots(len(panels), 1, figsize=(9, 3.2 * len(panels)), squeeze=False)
    for ax, (scenario, title, value) in zip(axes[:, 0], panels):
        items = [(name, value(r)) for name, r in results[scenario].items() if value(r) is not None]
        names = [n for n, _ in items]
        ax.barh(names, [v for _, v in items],
                color=["tab:green" if n.startswith("aiolog") else "tab:gray" for n in names])
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
