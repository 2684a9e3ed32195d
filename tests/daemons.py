"""Real log daemons for the tests, as children of the test process: journald here, rsyslogd
in ``tests/rsyslogd.py`` (without pytest: scenario 7 uses it too).

Each runs in a temporary directory on loopback ports or unix sockets of its own and is stopped
by the fixture that started it. Where a daemon cannot run here, ``pytest.skip`` says how to
install it.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .rsyslogd import Daemon as Rsyslogd, free_port, listening, missing, wait_until

__all__ = ["Journald", "Rsyslogd", "free_port", "journald", "listening", "require_rsyslog",
           "start_journald", "wait_until"]

JOURNALD = "/lib/systemd/systemd-journald"
_INSTALL_JOURNALD = "install it as root: apt-get install systemd (it needs no systemd as PID 1)"
_names = itertools.count()


class Journald:
    """``systemd-journald NAME`` (a namespace) with its sockets and files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.name = f"aiologtest{os.getpid()}x{next(_names)}"
        self.runtime = directory / "run"
        self.logs = directory / "logs"
        self.runtime.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return str(self.runtime / "socket")

    def start(self) -> None:
        env = {**os.environ, "RUNTIME_DIRECTORY": str(self.runtime),
               "LOGS_DIRECTORY": str(self.logs)}
        self.process = subprocess.Popen([JOURNALD, self.name], env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        process = self.process

        def listening() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"systemd-journald exited with {process.returncode}")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                probe.connect(self.socket)
            except OSError:
                return False
            finally:
                probe.close()
            return True

        wait_until(listening, "journald's socket")

    def stop(self) -> None:
        """SIGTERM and wait: journald writes what it has read and exits."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)

    def entries(self, **match: str) -> list[dict[str, Any]]:
        """Every entry written so far whose fields equal ``match``, as ``journalctl -o json``."""
        result = subprocess.run(
            ["journalctl", "-D", str(self.logs), "-o", "json", "--no-pager", "--all",
             *(f"{key}={value}" for key, value in match.items())],
            capture_output=True, text=True, timeout=120)
        return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]

    def wait_for(self, count: int, **match: str) -> list[dict[str, Any]]:
        """The matching entries, once there are at least ``count`` of them."""
        found: list[dict[str, Any]] = []

        def enough() -> bool:
            found[:] = self.entries(**match)
            return len(found) >= count

        wait_until(enough, f"{count} journal entries matching {match}")
        return found


def start_journald(directory: Path) -> Journald:
    """A running journald namespace in ``directory``; skips the test where none can run."""
    if not os.path.exists(JOURNALD) or shutil.which("journalctl") is None:
        pytest.skip(f"systemd-journald not found: {_INSTALL_JOURNALD}")
    if os.geteuid() != 0:
        pytest.skip("systemd-journald runs as root only; run the tests as root (CI does)")
    daemon = Journald(directory)
    try:
        daemon.start()
    except RuntimeError as exc:
        pytest.skip(f"systemd-journald cannot run here ({exc}): {_INSTALL_JOURNALD}")
    return daemon


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[Journald]:
    """A running journald namespace of the test's own, stopped after it."""
    daemon = start_journald(tmp_path / "journald")
    try:
        yield daemon
    finally:
        daemon.stop()


def require_rsyslog(*modules: str) -> None:
    """Skip, saying how to install them, unless rsyslogd and these modules are here."""
    why = missing(*modules)
    if why is not None:
        pytest.skip(why)
