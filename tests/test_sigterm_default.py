"""SIGTERM left to its default action loses nothing queued (issue 17, case 6).

uvicorn restores the default action after its graceful shutdown and re-raises SIGTERM; atexit
never runs then. aiolog drains first where the disposition was the default, and the process
still dies of the signal.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .conftest import lines, run_script

pytest.importorskip("uvicorn")

RECORDS = 20_000

APP = """
    import contextlib, logging

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        log = logging.getLogger("app")
        for i in range(RECORDS):  # a burst of last lines, and no aiolog.shutdown()
            log.info("last %d", i)

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            async with lifespan(app):
                message = await receive()
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
"""

LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(name)s: %(message)s"}},
    "handlers": {"aiolog": {"class": "aiolog.AsyncFileHandler", "filename": "logs/app.log",
                            "formatter": "plain"}},
    "root": {"level": "INFO", "handlers": ["aiolog"]},
}


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_uvicorn_log_config_without_shutdown_keeps_every_last_line(
        tmp_path: Path, workers: int) -> None:
    """uvicorn --log-config, no shutdown() anywhere, SIGTERM: each worker's burst of last
    lines and uvicorn's own "Finished server process" are on disk, and the server still
    ends as the signal's default action ends it."""
    (tmp_path / "app.py").write_text(textwrap.dedent(APP).replace("RECORDS", str(RECORDS)))
    (tmp_path / "log_config.json").write_text(json.dumps(LOG_CONFIG))
    path = tmp_path / "logs" / "app.log"
    with open(tmp_path / "server.err", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app:app", "--log-config", "log_config.json",
             "--port", "0", "--workers", str(workers)],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 120  # hang detection only
        while not path.exists() or sum("Application startup complete" in line
                                       for line in lines(path)) < workers:
            assert proc.poll() is None, (tmp_path / "server.err").read_text()
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    got = lines(tmp_path / "logs" / "app.log")
    last = [line for line in got if line.startswith("app: last ")]
    assert len(last) == workers * RECORDS, f"{workers * RECORDS - len(last)} last lines lost"
    assert sum("Finished server process" in line for line in got) == workers
    if workers == 1:
        assert code == -signal.SIGTERM  # the signal still does what it did


def test_a_program_with_no_handler_drains_and_dies_of_sigterm(tmp_path: Path) -> None:
    """A plain program (no handler of its own) killed by SIGTERM mid-burst has every record it
    logged before the signal on disk, and its exit status is still "killed by SIGTERM"."""
    proc = run_script(tmp_path, f"""
        import logging, os, signal, aiolog
        handler = aiolog.AsyncFileHandler("app.log")
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel("INFO")
        for i in range({RECORDS}):
            logging.getLogger("a").info("n %d", i)
        os.kill(os.getpid(), signal.SIGTERM)
        logging.getLogger("a").info("never")
    """, check=False)
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert lines(tmp_path / "app.log") == [f"n {i}" for i in range(RECORDS)]
