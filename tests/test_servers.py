"""The README's "Web servers" recipes, each run with the real server on 127.0.0.1.

Each test writes the README's files into an empty directory, lowers ``max_bytes`` so the log
rotates, sends requests with unique ids from several keep-alive connections (stdlib client,
bounded), and checks the rotated files: every answered id logged exactly once with exactly one
access line, no id twice, no torn line, and every worker's last lines on disk.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from . import readme

pytestmark = pytest.mark.slow
pytest.importorskip("uvicorn")
pytest.importorskip("gunicorn")
pytest.importorskip("uvicorn_worker")

MAX_BYTES = 20_000  # small, so that a few hundred requests rotate the file several times
LINE = re.compile(r"^\S+ \S+ (?P<pid>\d+) (?P<name>[\w.]+): (?P<message>.*)$")
REQUEST = re.compile(r"^request id=(\d+)$")
ACCESS = re.compile(r'"GET /\?id=(\d+) HTTP/1\.1" 200$')


def _write_recipes(directory: Path, *names: str) -> None:
    """The README's files, with max_bytes lowered (and the change checked to have happened).

    Only the ones named: gunicorn reads ./gunicorn.conf.py even when not told to.
    """
    recipes = readme.files()
    for name in names:
        code = recipes[name]
        lowered = code.replace("50_000_000", str(MAX_BYTES)).replace("50000000", str(MAX_BYTES))
        if name != "app_dictconfig.py":
            assert lowered != code, f"README's {name} no longer sets max_bytes=50_000_000"
        (directory / name).write_text(lowered)


def _gunicorn_extra() -> list[str]:
    """gunicorn 25+ opens a control socket in ~/.gunicorn: shared by every gunicorn on the
    machine, so tests running at once would trip on each other. Turn it off where it exists."""
    from gunicorn.config import KNOWN_SETTINGS
    return ["--no-control-socket"] if any(s.name == "control_socket_disable"
                                          for s in KNOWN_SETTINGS) else []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A real server process in ``directory``, its output kept in files for the failure text."""

    def __init__(self, directory: Path, args: list[str]) -> None:
        self.port = _free_port()
        self.directory = directory
        self.out = open(directory / "server.out", "wb")
        args = [a.replace("{port}", str(self.port)) for a in args]
        self.proc = subprocess.Popen([sys.executable, "-m", *args], cwd=directory,
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def output(self) -> str:
        self.out.flush()
        return (self.directory / "server.out").read_text(errors="replace")[-4000:]

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"server exited early:\n{self.output()}"
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/?id=ready")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"server not ready after {timeout} s:\n{self.output()}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM, as a container stop sends it; the server must exit by itself."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            pytest.fail(f"server did not stop within {timeout} s of SIGTERM:\n{self.output()}")
        finally:
            self.out.close()


Event = tuple[int, Callable[[], None], bool]  # (answered so far, action, whether it stops the server)


def load(port: int, total: int, events: list[Event] = (), concurrency: int = 8,  # type: ignore[assignment]
         timeout: float = 120) -> set[int]:
    """Send ``total`` requests with ids 0.., return the ids answered with 200 "ok".

    Each event's action runs once when that many requests have been answered (a HUP, a
    SIGTERM under load). A connection the server closes is reopened; a request that failed is
    not retried (the server may have logged it), so its id may be logged at most once.
    """
    pending = sorted(events, key=lambda e: e[0])
    answered: set[int] = set()
    lock = threading.Lock()
    next_id = iter(range(total))
    stopped = threading.Event()  # the server was told to stop: give up at the first error

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        errors = 0
        while errors < 50:  # bounded even if the server is gone for good
            with lock:
                i = next(next_id, None)
            if i is None:
                break
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
                conn.request("GET", f"/?id={i}")
                response = conn.getresponse()
                if response.status == 200 and response.read() == b"ok":
                    with lock:
                        answered.add(i)
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                errors += 1
                if stopped.is_set():
                    break
                time.sleep(0.02)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        while pending and len(answered) >= pending[0][0]:
            _, action, stops = pending.pop(0)
            if stops:
                stopped.set()
            action()
        time.sleep(0.005)
    for t in threads:
        t.join(timeout=max(1.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "the client did not finish in time"
    assert not pending, f"the load ended before these events: {pending}"
    return answered


def check_logs(directory: Path, answered: set[int], *, min_workers: int) -> None:
    """Every answered id once with one access line, no id twice, no torn line, rotation
    happened, and every worker that started has its last lines on disk."""
    files = sorted((directory / "logs").glob("app.log*"))
    assert len(files) >= 3, f"the log did not rotate: {files}"
    requests: Counter[int] = Counter()
    access: Counter[int] = Counter()
    started: set[int] = set()
    last: dict[str, set[int]] = {"Application shutdown complete.": set(),
                                 "Finished server process": set()}
    for f in files:
        for line in f.read_bytes().decode("utf-8").splitlines():
            m = LINE.match(line)
            assert m, f"torn or foreign line in {f.name}: {line!r}"
            pid, message = int(m["pid"]), m["message"]
            if r := REQUEST.match(message):
                requests[int(r[1])] += 1
            elif a := ACCESS.search(message):
                access[int(a[1])] += 1
            elif re.match(r"(worker \d+ started|Started server process)", message):
                started.add(pid)
            for start in last:
                if message.startswith(start):
                    last[start].add(pid)
    assert answered, "no request was answered"
    assert [i for i in answered if requests[i] != 1] == [], "answered ids not logged exactly once"
    assert [i for i in answered if access[i] != 1] == [], "answered ids without one access line"
    assert max(requests.values()) == 1 and max(access.values()) == 1, "an id logged twice"
    assert len(started) >= min_workers, f"workers that logged their start: {started}"
    for message, pids in last.items():
        assert started <= pids, f"workers {started - pids} lost their last line {message!r}"


def test_uvicorn_workers_configure_in_lifespan_sigterm_under_load(tmp_path: Path) -> None:
    """uvicorn --workers 2 with configure() in the lifespan: a SIGTERM under load loses and
    doubles nothing, and each worker's graceful shutdown runs and its last lines are kept."""
    _write_recipes(tmp_path, "app.py")
    server = Server(tmp_path, ["uvicorn", "app:app", "--workers", "2", "--host", "127.0.0.1",
                               "--port", "{port}"])
    try:
        server.wait_ready()
        answered = load(server.port, 1500, [(600, lambda: server.signal(signal.SIGTERM), True)])
    finally:
        server.stop()
    check_logs(tmp_path, answered, min_workers=2)


def test_uvicorn_log_config_with_dictconfig(tmp_path: Path) -> None:
    """uvicorn --log-config with the README's dictConfig JSON: app, server and access lines all
    reach the rotating file, once each."""
    _write_recipes(tmp_path, "app.py", "app_dictconfig.py", "log_config.json")
    server = Server(tmp_path, ["uvicorn", "app_dictconfig:app", "--log-config",
                               "log_config.json", "--workers", "2", "--host", "127.0.0.1",
                               "--port", "{port}"])
    try:
        server.wait_ready()
        answered = load(server.port, 800)
    finally:
        server.stop()
    assert len(answered) == 800
    check_logs(tmp_path, answered, min_workers=2)


def test_gunicorn_logconfig_dict_hup_reload_and_max_requests(tmp_path: Path) -> None:
    """gunicorn with the README's logconfig_dict, a HUP reload mid-stream and --max-requests
    recycling: every answered request and its access line are logged once."""
    _write_recipes(tmp_path, "app.py", "app_dictconfig.py", "gunicorn.conf.py")
    server = Server(tmp_path, ["gunicorn", "app_dictconfig:app", "-c", "gunicorn.conf.py",
                               "-w", "2", "-b", "127.0.0.1:{port}", "--max-requests", "300",
                               "--max-requests-jitter", "0", "--graceful-timeout", "20",
                               *_gunicorn_extra()])
    try:
        server.wait_ready()
        answered = load(server.port, 1500, [(500, lambda: server.signal(signal.SIGHUP), False)])
    finally:
        server.stop()
    assert len(answered) >= 1400, f"only {len(answered)} of 1500 answered"
    check_logs(tmp_path, answered, min_workers=4)


def test_gunicorn_preload_configure_in_lifespan_captures_access(tmp_path: Path) -> None:
    """gunicorn --preload with configure(capture=...) in the lifespan: the uvicorn worker's
    access lines reach aiolog, and a SIGTERM under load loses nothing that was answered."""
    _write_recipes(tmp_path, "app.py")
    server = Server(tmp_path, ["gunicorn", "app:app", "-k", "uvicorn_worker.UvicornWorker",
                               "-w", "2", "--preload", "-b", "127.0.0.1:{port}",
                               "--graceful-timeout", "20", *_gunicorn_extra()])
    try:
        server.wait_ready()
        answered = load(server.port, 1200, [(500, lambda: server.signal(signal.SIGTERM), True)])
    finally:
        server.stop()
    check_logs(tmp_path, answered, min_workers=2)


def test_without_shutdown_the_signal_handler_keeps_the_last_lines(tmp_path: Path) -> None:
    """With the README's app.py minus its shutdown() call, install_signal_handlers() alone keeps
    each uvicorn worker's last lines, though uvicorn re-raises SIGTERM and no atexit runs."""
    _write_recipes(tmp_path, "app.py")
    app = (tmp_path / "app.py").read_text()
    without = app.replace("    await aiolog.shutdown()", "    pass")
    assert without != app
    (tmp_path / "app.py").write_text(without)
    server = Server(tmp_path, ["uvicorn", "app:app", "--workers", "2", "--host", "127.0.0.1",
                               "--port", "{port}"])
    try:
        server.wait_ready()
        answered = load(server.port, 600)
    finally:
        server.stop()
    check_logs(tmp_path, answered, min_workers=2)


def test_gunicorn_conf_beside_the_configure_recipe_writes_each_record_once(
        tmp_path: Path) -> None:
    """The README's app.py with its gunicorn.conf.py in the same folder (gunicorn loads it
    unasked): configure() replaces the dictConfig root handler, so no line is written twice."""
    _write_recipes(tmp_path, "app.py", "gunicorn.conf.py")
    server = Server(tmp_path, ["gunicorn", "app:app", "-k", "uvicorn_worker.UvicornWorker",
                               "-w", "2", "-b", "127.0.0.1:{port}", *_gunicorn_extra()])
    try:
        server.wait_ready()
        answered = load(server.port, 600)
    finally:
        server.stop()
    check_logs(tmp_path, answered, min_workers=2)
