"""Turn results into a terminal table (Markdown, so the README can show it), a chart, and the
README's generated blocks (its opening figures and its benchmark tables)."""

from __future__ import annotations

import os
import platform
import re
import textwrap
from pathlib import Path
from typing import Any

BASELINE = "logging"  # FileHandler, or RotatingFileHandler with rotation on
SHARED_BASELINE = "concurrent-log-handler"
OURS = ("aiolog", "aiolog+uvloop")
WIDTH = 98  # the README's line length  # highlighted; aiologger and aiologging are peers


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
    return (f"{outcome['records_per_s']:,.0f} records/s  lost {outcome['lost']:,}  "
            f"misplaced {outcome['misplaced']:,}")


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


SCENARIO_NAMES = {"throughput": "1", "per_call": "2", "stall": "3", "shared": "4",
                  "timed": "5 (time rotation)", "json": "6 (JSON lines)",
                  "syslog": "7 (shipping logs)"}
JSON_BASELINE = "python-json-logger + FileHandler"
AUDIT_HEADER = ["records", "lost", "duplicated", "torn", "misplaced", "latest s"]


def _share(count: int | None, records: int | None) -> str:
    if count is None:
        return "-"
    if not count or not records:
        return f"{count:,}"
    return f"{count:,} ({_percent(count, records)})"


def _percent(count: int, records: int) -> str:
    share = 100 * count / records
    return "<0.1 %" if 0 < share < 0.05 else f"{share:.1f} %"


def _audit_cells(r: dict[str, Any]) -> list[str]:
    records = r.get("records")
    return [_fmt(records, ",d"), _share(r.get("lost"), records), _fmt(r.get("duplicated"), ",d"),
            _fmt(r.get("torn"), ",d"), _share(r.get("misplaced"), records),
            _fmt(r.get("misplaced_latest_s"), ".3f")]


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
                 *_audit_cells(r)] for name, r in data.items()]
        parts.append("4. Processes sharing one file rotated by size (aggregate records/s, median "
                     "of the runs; ratio to concurrent-log-handler; records audited and what "
                     "happened to them, totals over the runs; misplaced = written into a file "
                     "already rotated away, and the latest how late)\n" + _rows(
                         ["contender", "records/s", "ratio", *AUDIT_HEADER], rows))
    if "timed" in results:
        rows = [[name, *_audit_cells(r)] for name, r in results["timed"].items()]
        parts.append("5. Processes sharing one file rotated by time, every second, logging at "
                     "a steady rate (records audited and what happened to them, totals over "
                     "the runs; a peer whose calls wait logs fewer)\n"
                     + _rows(["contender", *AUDIT_HEADER], rows))
    if "stopped_reader" in results:
        from . import stopped_reader

        parts.append(stopped_reader.TITLE + "\n" + stopped_reader.table(results["stopped_reader"]))
    if "json" in results:
        data = results["json"]
        base = _get(data.get(JSON_BASELINE), "records_per_s")
        rows = [[name, r["error"], "", "", ""] if "error" in r else
                [name, _fmt(r["records_per_s"], ",.0f"), _ratio(r["records_per_s"], base),
                 _fmt(r["loop_us_per_call"], ".2f"), str(r["lost"])] for name, r in data.items()]
        parts.append("6. JSON lines: the same records with 3 `extra` and 2 bound context fields, "
                     "one process (records/s until all are on disk, median of the runs; ratio "
                     "to python-json-logger on FileHandler; event-loop time per call)\n"
                     + _rows(["contender", "records/s", "ratio", "loop µs/call", "lost"], rows))
    if "syslog" in results:
        from . import syslog

        parts.append(syslog.TITLE + "\n" + syslog.table(results["syslog"]))
    return "\n\n".join(parts)


def colour(name: str) -> str:
    """A bar's colour: green for aiolog's own contenders only (not aiologger or aiologging)."""
    return "tab:green" if ours(name) else "silver" if name == "no logging" else "tab:gray"


def ours(name: str) -> bool:
    """aiolog's own contenders, in every scenario ("aiolog JSON (orjson)" too)."""
    return name in OURS or name.startswith("aiolog JSON")


def _speed_panels() -> dict[str, tuple[str, str, Any]]:
    return {
        "throughput": ("1. One process, rotation on: records/s", "higher is better",
                       lambda r: _get(r, "rotation_on", "records_per_s")
                       or _get(r, "rotation_off", "records_per_s")),
        "per_call": ("2. One log call in the event loop: p99 µs", "lower is better",
                     lambda r: r.get("p99_us")),
        "stall": ("3. Sink stalls: max event-loop lag, ms", "lower is better",
                  lambda r: r.get("lag_max_ms")),
        "shared": ("4. Processes, one file rotated by size: records/s", "higher is better",
                   lambda r: r.get("records_per_s")),
        "json": ("6. JSON lines, one process: records/s", "higher is better",
                 lambda r: r.get("records_per_s")),
    }


CORRECTNESS = {"shared": "4. Processes, one file rotated by size: records lost / misplaced",
               "timed": "5. Processes, one file rotated every second: records lost / misplaced"}
# Scenario order; a scenario not listed (a new one) follows, in the order of the results.
ORDER = ("throughput", "per_call", "stall", "shared", "timed", "json")
# Figures that need a word of explanation, said on the chart itself (see the README's notes).
CORRUPT = {"picologging": "corrupt asctime here: every line is torn"}


def panels(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, scenario) in scenario order: correctness (what was lost) first, then speed."""
    order = [s for s in ORDER if s in results] + [s for s in results if s not in ORDER]
    return [(kind, s) for s in order for kind, table in (("correctness", CORRECTNESS),
                                                          ("speed", _speed_panels()))
            if s in table]


def _note(scenario: str, name: str, data: dict[str, Any]) -> str:
    """What a speed bar must say to be read right: a peer that did less work than the others."""
    r = data[name]
    if scenario == "stall":
        most = max((other.get("sent") or 0) for other in data.values())
        sent = r.get("sent") or 0
        if 0 < sent < 0.75 * most:  # aiologger: its awaited calls wait, so it logs less
            return f" (logged {sent:,} of {most:,}: its calls wait)"
    if scenario == "throughput" and r.get("rotation_on") is None and r.get("rotation_off"):
        return " (rotation off: it has no size rotation)"
    return ""


def chart(results: dict[str, dict[str, Any]], path: Path, run: str = "") -> None:
    """Every scenario in order, correctness beside speed, every contender; aiolog's in green."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = panels(results)
    if not shown:
        return
    rows = (len(shown) + 1) // 2
    figure, axes = plt.subplots(rows, 2, figsize=(13, 3.6 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax, (kind, scenario) in zip(flat, shown):
        if kind == "correctness":
            _correctness_panel(ax, results[scenario], CORRECTNESS[scenario])
            continue
        title, better, value = _speed_panels()[scenario]
        data = results[scenario]
        items = [(name, value(r)) for name, r in data.items()
                 if "error" not in r and value(r) is not None]
        names = [n for n, _ in items]
        values = [v for _, v in items]
        bars = ax.barh(names, values, color=[colour(n) for n in names])
        ax.bar_label(bars, labels=[(f"{v:,.0f}" if v >= 100 else f"{v:.1f}")
                                   + _note(scenario, n, data) for n, v in items],
                     padding=3, fontsize=7)
        longest = max((len(_note(scenario, n, data)) for n in names), default=0)
        ax.set_xlim(0, max(values, default=1) * (1.2 + longest / 40) or 1)
        _decorate(ax, title, better)
    for ax in flat[len(shown):]:
        ax.set_visible(False)
    if run:
        figure.suptitle(f"aiolog benchmarks, run {run}", fontsize=11)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _correctness_panel(ax: Any, data: dict[str, Any], title: str) -> None:
    """Lost and misplaced records as a share of those logged: the bars should be empty."""
    names = [n for n, r in data.items() if r.get("records")]
    lost = [100 * data[n]["lost"] / data[n]["records"] for n in names]
    late = [100 * data[n]["misplaced"] / data[n]["records"] for n in names]
    ax.barh(names, lost, color="tab:red", label="lost")
    ax.barh(names, late, left=lost, color="tab:orange", label="misplaced (rotated-away file)")
    for y, name in enumerate(names):
        r = data[name]
        faults = [f"{label} {r[key]:,}" for key, label in (
            ("lost", "lost"), ("duplicated", "duplicated"), ("torn", "torn"),
            ("misplaced", "misplaced")) if r.get(key)]
        text = (", ".join(faults) + f" of {r['records']:,}" if faults
                else f"all {r['records']:,} in place")
        if r.get("torn") and name in CORRUPT:
            text += f"\n({CORRUPT[name]})"
        ax.text(min(100.0, lost[y] + late[y]) + 1, y, text,
                va="center", fontsize=7, color="tab:green" if not faults else "black")
    ax.set_xlim(0, 160)  # room for the labels right of a full bar
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.set_xlabel("% of the records logged", fontsize=8)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    _decorate(ax, title, "lower is better: aiolog's should be empty")


def _decorate(ax: Any, title: str, better: str) -> None:
    ax.invert_yaxis()
    ax.set_title(f"{title}\n({better})", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.xaxis.set_major_formatter(_thousands())
    for label in ax.get_yticklabels():
        if ours(label.get_text()):
            label.set_color("tab:green")
            label.set_fontweight("bold")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _: f"{x:,.0f}" if abs(x) >= 100 else f"{x:g}")


# The README's generated blocks sit between these markers; `python -m benchmarks
# --update-readme` rewrites what is between them and nothing else.
BLOCK = re.compile(r"(<!-- benchmarks:(?P<name>[a-z]+)[^>]*-->\n)"  # start marker, kept
                   r"(?P<body>.*?)"  # what is redrawn
                   r"(<!-- /benchmarks:(?P=name) -->)", re.DOTALL)  # end marker, kept


def update_readme(text: str, document: dict[str, Any]) -> str:
    """``text`` with its ``headline`` and ``tables`` blocks redrawn from ``document``.

    Raises:
        ValueError: a block's markers are missing, so the README would silently keep stale figures.
    """
    document = _upgrade(document)
    bodies = {"headline": headline(document), "tables": tables_block(document)}
    found = {m["name"] for m in BLOCK.finditer(text)}
    if missing := set(bodies) - found:
        raise ValueError(f"README has no block {sorted(missing)}: expected "
                         "'<!-- benchmarks:NAME -->' ... '<!-- /benchmarks:NAME -->'")
    return BLOCK.sub(lambda m: m[1] + bodies[m["name"]].rstrip("\n") + "\n" + m[4]
                     if m["name"] in bodies else m[0], text)


def _upgrade(document: dict[str, Any]) -> dict[str, Any]:
    """Fill what older results files lack: the records audited in scenario 4, a run name."""
    settings = document.get("settings", {})
    shared = document.get("results", {}).get("shared", {})
    for r in shared.values():
        if "records" not in r and "error" not in r:
            r["records"] = (settings.get("processes", 0) * settings.get("shared_records", 0)
                            * r.get("runs", 1))
    document.setdefault("run", {"name": "unnamed", "non_default": {}})
    return document


def run_name(document: dict[str, Any]) -> str:
    return str(document.get("run", {}).get("name", "unnamed"))


def headline(document: dict[str, Any]) -> str:
    """The README's opening figures: what Python's own handlers did in the named run."""
    results, settings = document["results"], document.get("settings", {})
    clauses = []
    size = _get(results, "shared", BASELINE)
    if size and size.get("records"):
        clauses.append("`RotatingFileHandler` " + _fate(size))
    timed = _get(results, "timed", BASELINE)
    if timed and timed.get("records"):
        clauses.append("`TimedRotatingFileHandler`, rotating every second, " + _fate(timed))
    stall = _get(results, "stall", BASELINE, "lag_max_ms")
    if stall is not None:
        clauses.append(f"a plain `FileHandler` froze the event loop for {stall:,.0f} ms "
                       "whenever its sink paused (400 ms of every second)")
    if not clauses:
        return f"Python's own handlers fail such services (no figures in run {run_name(document)}).\n"
    figures = (", ".join(clauses[:-1]) + ", and " + clauses[-1]) if len(clauses) > 1 else clauses[0]
    text = (f"Python's own handlers fail such services. In benchmark run **{run_name(document)}** "
            f"([Benchmarks](#benchmarks)), with {settings.get('processes', 4)} processes on one "
            f"file, {figures}.")
    ours = [r for r in (_get(results, s, "aiolog") for s in ("shared", "timed"))
            if r and r.get("records")]
    if ours:
        faults = {key: sum(r[key] for r in ours) for key in ("lost", "duplicated", "torn",
                                                               "misplaced")}
        if not any(faults.values()):
            text += " In the same run aiolog lost, duplicated, tore and misplaced none."
        else:
            text += " In the same run aiolog had " + ", ".join(
                f"{n:,} {key}" for key, n in faults.items() if n) + " records."
    return textwrap.fill(text, WIDTH, break_long_words=False, break_on_hyphens=False) + "\n"


def _fate(r: dict[str, Any]) -> str:
    """What happened to one contender's records, in words."""
    records = r["records"]
    lost = (f"lost {_percent(r['lost'], records)} of the records" if r["lost"]
            else "lost none of the records")
    if not r["misplaced"]:
        return lost
    latest = r["misplaced_latest_s"]
    late = (f"wrote {_percent(r['misplaced'], records)} into files already rotated away (up to "
            + (f"{latest:.1f} s" if latest >= 0.1 else f"{latest * 1000:.0f} ms") + " late)")
    return f"{lost} and {late}" if r["lost"] else f"{lost} but {late}"


def tables_block(document: dict[str, Any]) -> str:
    """The README's benchmark block: which run, on what, its tables and its chart."""
    machine = document.get("machine", {})
    run = document.get("run", {})
    non_default = run.get("non_default", {})
    sizes = ("default sizes" if not non_default else "non-default settings: " + ", ".join(
        f"{k}={v}" for k, v in non_default.items()))
    took = f", {run['seconds'] / 60:.0f} minutes" if run.get("seconds") else ""
    lines = [f"Run **{run_name(document)}** of `python -m benchmarks` "
             f"({sizes}{took}) on {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
             f"Python {machine.get('python', '?')}, {machine.get('system', '?')}. "
             "The machine is shared and noisy: read the ratios, not the absolute numbers.", ""]
    for part in table(document["results"]).split("\n\n"):
        title, rest = part.split("\n", 1)
        lines += [f"**{title}**", "", rest, ""]
    missing = [s for s in SCENARIO_NAMES if s not in document["results"]]
    if missing:
        lines += [textwrap.fill(
            f"This run has no scenario{'s' if len(missing) > 1 else ''} "
            + ", ".join(SCENARIO_NAMES[s] for s in missing) + ": the next "
            "`python -m benchmarks --update-results` adds its table, its chart panels and its "
            "figures in the opening paragraph.", WIDTH), ""]
    lines.append("![benchmark chart](benchmarks/results/results.png)")
    lines[0] = textwrap.fill(lines[0], WIDTH, break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines) + "\n"
