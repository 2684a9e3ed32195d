"""Every way out of a child process drains its queue (issue 17, case 1).

multiprocessing ends fork and forkserver children, and Pool and ProcessPoolExecutor workers,
with ``os._exit()`` once the target returns: atexit never runs there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import lines, run_script

RECORDS = 20_000

CHILDREN = """
    import asyncio, concurrent.futures, logging, multiprocessing as mp, os, sys
    import aiolog

    RECORDS = {records}

    def log_and_return(tag):
        if not aiolog._registry.live_writers():
            # A child that did not inherit a handler (forkserver, spawn) builds its own.
            handler = aiolog.AsyncFileHandler("app.log")
            handler.setFormatter(logging.Formatter("%(message)s"))
            logging.getLogger().addHandler(handler)
            logging.getLogger().setLevel("INFO")
        log = logging.getLogger("child")
        for i in range(RECORDS):
            log.info("%s %d", tag, i)
        return tag  # and nothing else: no flush, no shutdown

    def main(how):
        asyncio.run(aiolog.configure("app.log", format="%(message)s"))
        if how == "pool":  # a worker recycled after every task, and the pool closed
            with mp.get_context("fork").Pool(2, maxtasksperchild=1) as pool:
                print(pool.map(log_and_return, ["p0", "p1", "p2"]))
                pool.close()
                pool.join()
        elif how == "executor":
            ctx = mp.get_context("fork")
            with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as ex:
                print(list(ex.map(log_and_return, ["e0", "e1"])))
        else:
            child = mp.get_context(how).Process(target=log_and_return, args=(how,))
            child.start()
            child.join()
            assert child.exitcode == 0
        logging.getLogger("parent").info("parent done")
        asyncio.run(aiolog.shutdown())

    if __name__ == "__main__":
        main(sys.argv[1])
"""


@pytest.mark.parametrize(("how", "tags"), [
    ("fork", ["fork"]), ("forkserver", ["forkserver"]), ("spawn", ["spawn"]),
    ("pool", ["p0", "p1", "p2"]), ("executor", ["e0", "e1"]),
])
def test_a_child_that_logs_and_returns_loses_nothing(tmp_path: Path, how: str,
                                                     tags: list[str]) -> None:
    """Every record a multiprocessing child logged before its target returned is written."""
    source = CHILDREN.format(records=RECORDS)
    run_script(tmp_path, source, how, timeout=300)
    got = lines(tmp_path / "app.log")
    for tag in tags:
        mine = [line for line in got if line.startswith(tag + " ")]
        assert mine == [f"{tag} {i}" for i in range(RECORDS)], (
            f"{tag}: {RECORDS - len(mine)} of {RECORDS} lost")
    assert got[-1] == "parent done"
