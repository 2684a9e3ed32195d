"""The sidecar way: rsyslog's ``imfile`` tails aiolog's rotating file and ships it over RELP.

Several processes write one rotating file; a "shipper" rsyslogd tails it with ``imfile`` and
forwards with ``omrelp`` to a "collector" rsyslogd (``imrelp``) that writes what it receives to
a file. Every record must arrive there exactly once, with and without ``compress=True``.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from .daemons import Rsyslogd, free_port, listening, require_rsyslog, wait_until
from .logfiles import wait_all

WRITERS = 3
RECORDS = 3_000  # per writer, ~50 bytes each: 4 rotations of the 100 kB file in all
_RECORD = re.compile(r"\bw(\d) (\d+) x+$")

_WRITER = textwrap.dedent("""
    import asyncio, logging, sys, aiolog

    async def main(path, tag, n, compress):
        await aiolog.configure(path, format="%(message)s", max_bytes=100_000,
                               compress=compress)
        log = logging.getLogger("w")
        for i in range(n):
            log.info("w%s %d %s", tag, i, "x" * 40)
            if i % 10 == 0:
                await asyncio.sleep(0.01)  # a service's pace, not one burst
        await aiolog.shutdown()  # returns once the compression of the last backup is done

    path, tag, n, compress = sys.argv[1:]
    asyncio.run(main(path, tag, int(n), compress == "1"))
""")


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[tuple[Path, Path, Rsyslogd]]:
    """A collector (imrelp -> file) and a shipper (imfile on ``logs/app.log`` -> omrelp)."""
    require_rsyslog("imfile", "imrelp", "omrelp")
    logs = tmp_path / "logs"
    logs.mkdir()
    received = tmp_path / "received.log"
    port = free_port()
    collector = Rsyslogd(tmp_path / "collector", f"""
        module(load="imrelp")
        template(name="raw" type="string" string="%rawmsg%\\n")
        ruleset(name="out") {{ action(type="omfile" file="{received}" template="raw") }}
        input(type="imrelp" port="{port}" address="127.0.0.1" ruleset="out")
    """)
    shipper = Rsyslogd(tmp_path / "shipper", f"""
        module(load="imfile" mode="inotify")
        module(load="omrelp")
        ruleset(name="ship") {{
            action(type="omrelp" target="127.0.0.1" port="{port}")
        }}
        input(type="imfile" file="{logs}/app.log" tag="app" ruleset="ship")
    """)
    try:
        collector.start(listening(port))
        shipper.start(lambda: True)
        # The pipeline is up once a line written before any writer starts has gone through:
        # from then on imfile follows app.log, whatever the writers do to it.
        with open(logs / "app.log", "a") as probe:
            probe.write("pipeline ready\n")
        wait_until(lambda: received.exists() and "pipeline ready" in received.read_text(),
                   "the pipeline to ship a first line")
        yield logs, received, shipper
    finally:
        shipper.stop()
        collector.stop()


def _write(logs: Path, *, compress: bool, writers: int = WRITERS,
           records: int = RECORDS) -> None:
    """Run ``writers`` processes, each logging ``records`` numbered records into app.log."""
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(logs / "app.log"), str(tag),
                               str(records), str(int(compress))])
             for tag in range(writers)]
    wait_all(procs)


def _arrived(received: Path) -> Counter[tuple[int, int]]:
    if not received.exists():
        return Counter()
    found: Counter[tuple[int, int]] = Counter()
    for line in received.read_text(errors="replace").splitlines():
        match = _RECORD.search(line)
        if match:
            found[int(match[1]), int(match[2])] += 1
    return found


def _check(received: Path, expected: Counter[tuple[int, int]]) -> None:
    """Every expected record arrives, each once (waiting for the pipeline, not timing it)."""
    try:
        wait_until(lambda: set(_arrived(received)) >= set(expected), "every record to arrive",
                   timeout=60)
    except AssertionError:
        pass  # the assertions below say what is missing
    arrived = _arrived(received)
    missing = sorted(set(expected) - set(arrived))
    assert not missing, f"{len(missing)} records lost, e.g. {missing[:5]}"
    assert arrived == expected, "records arrived twice"


@pytest.mark.slow
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "compress"])
def test_imfile_ships_every_record_once(pipeline: tuple[Path, Path, Rsyslogd],
                                        compress: bool) -> None:
    """imfile tailing aiolog's rotating file (3 processes) delivers every record exactly once."""
    logs, received, _ = pipeline
    _write(logs, compress=compress)
    assert len(list(logs.glob("app.log.*.gz" if compress else "app.log.*"))) >= 3
    _check(received, Counter({(tag, i): 1 for tag in range(WRITERS) for i in range(RECORDS)}))


@pytest.mark.slow
def test_tailer_frozen_across_rotation_and_compression(
        pipeline: tuple[Path, Path, Rsyslogd]) -> None:
    """A tailer frozen while a backup is rotated, gzipped and deleted still reads all of it:
    it holds the rotated file open, so ``compress=True`` needs no delay for imfile."""
    logs, received, shipper = pipeline  # imfile follows app.log
    assert shipper.process is not None
    shipper.process.send_signal(signal.SIGSTOP)
    try:
        # 3,000 records (~145 kB): one rotation past 100 kB, and its backup compressed (the
        # writer's shutdown waits for that) while imfile has read none of them.
        _write(logs, compress=True, writers=1, records=3_000)
        backups = [p.name for p in logs.iterdir()
                   if p.name.startswith("app.log.") and not p.name.endswith(".lock")]
        assert backups == ["app.log.1.gz"]  # rotated, compressed, the plain file deleted
    finally:
        shipper.process.send_signal(signal.SIGCONT)
    _check(received, Counter({(0, i): 1 for i in range(3_000)}))
