"""install_signal_handlers(): write what is queued, then let the replaced handler run."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .conftest import lines, run_script

# The script mimics uvicorn: its own SIGTERM handler asks for a graceful stop, the program logs
# its last lines, then restores the default action and re-raises the signal (no atexit runs).
SERVER_LIKE = """
    import asyncio, logging, os, signal, sys, aiolog
    stop = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(int(signum)))
    async def main():
        await aiolog.configure("app.log", format="%(message)s")
        aiolog.install_signal_handlers()
        log = logging.getLogger("app")
        for i in range(2000):
            log.info("n %d", i)
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(500):  # bounded: at most about 5 s
            if stop:
                break
            await asyncio.sleep(0.01)
        log.info("graceful shutdown ran: %s", stop)
        for i in range(2000, 3000):
            log.info("n %d", i)
        log.info("Finished server process")
    if sys.argv[1] == "uvloop":
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.raise_signal(signal.SIGTERM)
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_replaced_handler_runs_and_the_last_lines_survive(tmp_path: Path, loop: str) -> None:
    """The handler install_signal_handlers() replaced still runs (a server's graceful
    shutdown), and the lines logged after the signal are on disk although the process then
    dies of the re-raised signal without any atexit drain."""
    proc = run_script(tmp_path, SERVER_LIKE, loop, check=False, timeout=60)
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    got = lines(tmp_path / "app.log")
    assert "graceful shutdown ran: [15]" in got, proc.stderr
    assert [line for line in got if line.startswith("n ")] == [f"n {i}" for i in range(3000)]
    assert got[-1] == "Finished server process"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_with_no_handler_before_the_process_dies_of_the_signal(tmp_path: Path, loop: str) -> None:
    """With no handler to chain to, the signal writes what is queued, then kills the process
    as it would have (exit status: killed by SIGTERM)."""
    proc = run_script(tmp_path, """
        import asyncio, logging, os, signal, sys, aiolog
        async def main():
            await aiolog.configure("app.log", format="%(message)s")
            aiolog.install_signal_handlers()
            for i in range(5000):
                logging.getLogger("app").info("n %d", i)
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(10)
            print("not killed")
        if sys.argv[1] == "uvloop":
            import uvloop
            uvloop.run(main())
        else:
            asyncio.run(main())
    """, loop, check=False, timeout=60)
    assert proc.returncode == -signal.SIGTERM and "not killed" not in proc.stdout, proc.stderr
    assert lines(tmp_path / "app.log") == [f"n {i}" for i in range(5000)]


def test_a_uvloop_add_signal_handler_is_not_silently_replaced(tmp_path: Path) -> None:
    """On uvloop, a handler added with loop.add_signal_handler() cannot be chained to, so
    install_signal_handlers() refuses with a clear error instead of cutting it off."""
    proc = run_script(tmp_path, """
        import asyncio, signal, uvloop, aiolog
        async def main():
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, print)
            try:
                aiolog.install_signal_handlers()
            except RuntimeError as exc:
                print(exc)
        uvloop.run(main())
    """)
    assert "cannot chain to it" in proc.stdout
