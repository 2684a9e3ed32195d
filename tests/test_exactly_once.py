"""Issue 11's cases: every record on disk exactly once, whole, in order, on every path.

Each test names the case it pins. Programs run as real processes where the path is the
process's own (exit, exec, signals, resource limits).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import aiolog
from aiolog.sinks._lock import Lockfile, pid_namespace, process_start_time

from .conftest import lines, numbers, run_script, size_set
from .test_core import StuckStream


class TestExitAndLoops:
    def test_run_until_complete_then_exit_without_shutdown(self, tmp_path: Path) -> None:
        """Case 1: a program built on loop.run_until_complete() that exits without shutdown()
        finds every record on disk and no error printed."""
        proc = run_script(tmp_path, """
            import asyncio, logging, aiolog
            async def main():
                await aiolog.configure("app.log", format="%(message)s")
                for i in range(5000):
                    logging.getLogger("a").info("n %d", i)
            loop = asyncio.new_event_loop()
            loop.run_until_complete(main())
        """)
        assert proc.stderr == ""
        assert numbers(tmp_path / "app.log", "n ") == list(range(5000))

    def test_loop_closed_with_a_chunk_in_flight_then_a_new_loop(self, tmp_path: Path) -> None:
        """Case 2: a loop stopped and closed while a chunk is being written, then asyncio.run()
        logging again: each record is written once."""
        run_script(tmp_path, """
            import asyncio, logging, aiolog
            async def first():
                await aiolog.configure("app.log", format="%(message)s")
                for i in range(5000):
                    logging.getLogger("a").info("n %d", i)
                await asyncio.sleep(0)  # the writer starts on a chunk
            loop = asyncio.new_event_loop()
            loop.run_until_complete(first())
            loop.close()
            async def second():
                logging.getLogger("a").info("n %d", 5000)
                await aiolog.shutdown()
            asyncio.run(second())
        """)
        assert numbers(tmp_path / "app.log", "n ") == list(range(5001))


class TestShortWrites:
    def test_a_short_write_resumes_and_never_repeats(self, tmp_path: Path) -> None:
        """Case 3: the file hits RLIMIT_FSIZE mid-chunk (a short write, then EFBIG) and the
        limit is lifted later: the chunk resumes where it stopped, nothing repeated or torn."""
        proc = run_script(tmp_path, """
            import asyncio, logging, resource, signal, threading, aiolog
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
            soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            failed = threading.Event()
            class Handler(aiolog.AsyncFileHandler):
                def handleError(self, record):  # told once per burst of failures
                    failed.set()
            async def main():
                handler = Handler("app.log")
                handler.setFormatter(logging.Formatter("%(message)s"))
                await aiolog.configure(handlers=[handler])
                resource.setrlimit(resource.RLIMIT_FSIZE, (5000, hard))  # mid-line, mid-chunk
                for i in range(500):
                    logging.getLogger("a").info("record number %d", i)
                assert await asyncio.to_thread(failed.wait, 60)
                resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space comes back
                for _ in range(600):
                    if not handler.stats()["queued"]:
                        break
                    await asyncio.sleep(0.05)
                await aiolog.shutdown()
                print(handler.stats())
            asyncio.run(main())
        """)
        assert lines(tmp_path / "app.log") == [f"record number {i}" for i in range(500)]
        assert "'written': 500" in proc.stdout and "'errors': 0" in proc.stdout


class TestMaxBytes:
    async def test_no_file_grows_past_max_bytes_smaller_than_a_chunk(self, tmp_path: Path) -> None:
        """Case 5: with max_bytes below a chunk's 64 KiB, a chunk is split at the line where the
        file would pass max_bytes: no file grows past it, and every record is there once."""
        path = tmp_path / "app.log"
        await aiolog.configure(path, format="%(message)s", max_bytes=20_000)
        for i in range(20_000):  # bursts of whole chunks, each far larger than max_bytes
            logging.getLogger("a").info("record number %d %s", i, "." * 60)
        await aiolog.shutdown()
        files = size_set(tmp_path)
        assert len(files) > 10
        assert max(f.stat().st_size for f in files) <= 20_000
        assert [int(line.split()[2]) for f in files for line in lines(f)] == list(range(20_000))

    async def test_a_line_larger_than_max_bytes_gets_a_file_of_its_own(self, tmp_path: Path) -> None:
        """As RotatingFileHandler: one record larger than max_bytes is written whole, alone."""
        path = tmp_path / "app.log"
        await aiolog.configure(path, format="%(message)s", max_bytes=1000)
        logging.getLogger("a").info("small 1")
        logging.getLogger("a").info("x" * 3000)
        logging.getLogger("a").info("small 2")
        await aiolog.shutdown()
        assert [lines(f) for f in size_set(tmp_path)] == [["small 1"], ["x" * 3000], ["small 2"]]


class TestFailingDisk:
    async def test_block_loses_nothing_while_the_disk_fails(self, tmp_path: Path) -> None:
        """Case 6: with overflow='block' a disk that refuses writes for a while (ENOSPC) makes
        records wait, from the loop and from threads, and none is dropped: all arrive once it
        recovers."""
        path = tmp_path / "app.log"
        path.symlink_to("/dev/full")
        logging.raiseExceptions = False  # the one report per burst is not this test's subject
        try:
            [handler] = await aiolog.configure(path, format="%(name)s %(message)s", max_queue=100)

            def from_thread() -> None:
                for i in range(1000):
                    logging.getLogger("thread").info("n %d", i)

            worker = threading.Thread(target=from_thread)
            worker.start()
            for i in range(1000):
                logging.getLogger("loop").info("n %d", i)
                if i % 100 == 0:
                    await asyncio.sleep(0.01)
            await asyncio.to_thread(worker.join, 60)
            assert not worker.is_alive()
            assert handler.stats()["written"] == 0
            fresh = tmp_path / "fresh"
            fresh.touch()
            os.replace(fresh, path)  # the disk accepts writes again
            for _ in range(600):
                if not handler.stats()["queued"]:
                    break
                await asyncio.sleep(0.05)
            await aiolog.flush()
        finally:
            logging.raiseExceptions = True
        assert numbers(path, "loop n") == list(range(1000))
        assert numbers(path, "thread n") == list(range(1000))
        assert handler.stats()["dropped"] == 0 and handler.stats()["errors"] == 0


class TestFlush:
    async def test_flush_never_misses_a_wake_up(self, tmp_path: Path) -> None:
        """Case 7: flush() while another thread's records are settled at the same moment always
        returns (a missed wake-up would hang one of these flushes)."""
        path = tmp_path / "app.log"
        await aiolog.configure(path, format="%(message)s")
        stop = threading.Event()

        def from_thread() -> None:
            i = 0
            while not stop.is_set():
                logging.getLogger("a").info("t %d", i)
                i += 1
                if i % 10 == 0:
                    time.sleep(0.0001)  # settles keep coming, without burying the flushes

        worker = threading.Thread(target=from_thread)
        worker.start()
        try:
            for i in range(1000):
                logging.getLogger("a").info("l %d", i)
                await asyncio.wait_for(aiolog.flush(), timeout=30)
        finally:
            stop.set()
            worker.join()
        await aiolog.flush()
        assert numbers(path, "l ") == list(range(1000))

    def test_flush_sync_in_a_plain_signal_handler(self, tmp_path: Path) -> None:
        """Case 8: flush_sync() and logging from a signal.signal handler firing every 2 ms,
        while the loop and a thread log, never deadlock, and every record arrives."""
        proc = run_script(tmp_path, """
            import asyncio, itertools, logging, signal, threading, aiolog
            counter = itertools.count()  # atomic: a handler may interrupt another one
            flushing = []
            def on_alarm(signum, frame):
                logging.getLogger("signal").info("n %d", next(counter))
                if not flushing:  # a signal during our flush logs only, so nesting stays 2 deep
                    flushing.append(1)
                    aiolog.flush_sync()
                    flushing.pop()
            async def main():
                await aiolog.configure("app.log", format="%(name)s %(message)s", max_queue=500)
                signal.signal(signal.SIGALRM, on_alarm)
                signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
                t = threading.Thread(target=lambda: [logging.getLogger("thread").info("n %d", i)
                                                     for i in range(20000)])
                t.start()
                for i in range(20000):
                    logging.getLogger("loop").info("n %d", i)
                    if i % 500 == 0:
                        await asyncio.sleep(0)
                await asyncio.to_thread(t.join)
                signal.setitimer(signal.ITIMER_REAL, 0)
                await aiolog.shutdown()
                print("fired", next(counter))
            asyncio.run(main())
        """, timeout=120)
        fired = int(proc.stdout.split()[-1])
        assert fired > 0
        path = tmp_path / "app.log"
        assert numbers(path, "loop n") == list(range(20000))
        assert numbers(path, "thread n") == list(range(20000))
        # A handler interrupted by the next signal logs after it: two producers, any order.
        assert sorted(numbers(path, "signal n")) == list(range(fired))


class TestShutdownAndClose:
    def test_records_from_a_thread_during_shutdown_are_written_before_exec(
            self, tmp_path: Path) -> None:
        """Case 9: a thread logging while shutdown() runs and after it returns: flush_sync()
        then os.execv finds every record on disk."""
        run_script(tmp_path, """
            import asyncio, logging, os, sys, threading, aiolog
            if len(sys.argv) > 1:
                sys.exit(0)  # the exec'd image
            async def main():
                await aiolog.configure("app.log", format="%(message)s")
                started = threading.Event()
                def from_thread():
                    for i in range(3000):
                        logging.getLogger("a").info("t %d", i)
                        started.set()
                t = threading.Thread(target=from_thread)
                t.start()
                started.wait()
                await aiolog.shutdown()
                await asyncio.to_thread(t.join)
            asyncio.run(main())
            aiolog.flush_sync()
            os.execv(sys.executable, [sys.executable, sys.argv[0], "again"])
        """)
        assert numbers(tmp_path / "app.log", "t ") == list(range(3000))

    async def test_close_from_a_thread_while_the_loop_logs(self, tmp_path: Path) -> None:
        """Case 10: handler.close() from another thread while the loop logs: nothing lost or
        repeated, and later records are written synchronously."""
        path = tmp_path / "app.log"
        [handler] = await aiolog.configure(path, format="%(message)s")
        midway = threading.Event()
        closer = threading.Thread(target=lambda: midway.wait(60) and handler.close())
        closer.start()
        for i in range(20_000):
            logging.getLogger("a").info("n %d", i)
            if i == 2_000:
                midway.set()
            if i % 50 == 0:
                await asyncio.sleep(0)
        await asyncio.to_thread(closer.join)
        aiolog.flush_sync()
        assert numbers(path, "n ") == list(range(20_000))


class TestRotationLookAgain:
    async def test_a_rotation_by_another_process_while_we_wait_for_the_lock(
            self, tmp_path: Path) -> None:
        """Under the lock we look at the path again: if another process rotated while we
        waited, we reopen instead of rotating its fresh file away (and, with backup_count=1,
        deleting our own backup)."""
        path = tmp_path / "app.log"
        lock = tmp_path / "app.log.lock"
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        try:
            [handler] = await aiolog.configure(path, format="%(message)s", max_bytes=1000,
                                               backup_count=1, lock_timeout=600)
            logging.getLogger("a").info("ours " + "x" * 900)
            await aiolog.flush()
            lock.write_text(f"{sleeper.pid} {process_start_time(sleeper.pid)} "
                            f"{socket.gethostname()} {pid_namespace()} token\n")
            logging.getLogger("a").info("due " + "y" * 200)  # needs a rotation: waits
            for _ in range(600):
                if handler._writer.owner.stalled:
                    break
                await asyncio.sleep(0.01)
            assert handler._writer.owner.stalled
            # Meanwhile another process rotates (under its own lock, as far as we can tell).
            # Its new file appears whole, in one step: our owner looks at the path while it
            # waits, and a file it reopened while write_text() truncated and wrote it would
            # lose our record's first bytes under "theirs" (seen 1 run in 14).
            fresh = tmp_path / "fresh"
            fresh.write_text("theirs\n")
            os.link(path, tmp_path / "app.log.1")
            os.rename(fresh, path)
            lock.unlink()
            await aiolog.shutdown()
        finally:
            sleeper.kill()
            sleeper.wait()
        assert lines(tmp_path / "app.log.1") == ["ours " + "x" * 900]
        assert lines(path) == ["theirs", "due " + "y" * 200]
        assert handler.stats()["rotations"] == 0


    async def test_a_rotation_between_our_look_and_our_lock(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The same when the other process rotates in the instant between our look at the path
        and our taking the lock: only the look under the lock can see it."""
        path = tmp_path / "app.log"
        [handler] = await aiolog.configure(path, format="%(message)s", max_bytes=1000,
                                           backup_count=1)
        logging.getLogger("a").info("ours " + "x" * 900)
        await aiolog.flush()
        take_lock = Lockfile.acquire
        rotated = []

        def another_process_rotates_first(lock: Lockfile) -> bool:
            if not rotated:  # real files: what another process's rotation does, at this point
                os.rename(path, tmp_path / "app.log.1")
                path.write_text("theirs\n")
                rotated.append(True)
            return take_lock(lock)

        monkeypatch.setattr(Lockfile, "acquire", another_process_rotates_first)
        logging.getLogger("a").info("due " + "y" * 200)
        await aiolog.shutdown()
        assert rotated
        assert lines(tmp_path / "app.log.1") == ["ours " + "x" * 900]
        assert lines(path) == ["theirs", "due " + "y" * 200]
        assert handler.stats()["rotations"] == 0


class TestFork:
    def test_a_forked_child_never_writes_the_parents_queued_records(self, tmp_path: Path) -> None:
        """Records queued in the parent at the fork (its writer waiting for a lock) are
        written by the parent only, once; the child writes only its own."""
        run_script(tmp_path, """
            import asyncio, atexit, logging, os, socket, subprocess, sys, time, aiolog
            from aiolog.sinks._lock import Lockfile, pid_namespace, process_start_time
            sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            atexit.register(sleeper.kill)  # else a failure waits lock_timeout at exit
            async def parent():
                [h] = await aiolog.configure("app.log", format="%(message)s", max_bytes=200,
                                             lock_timeout=600)
                logging.getLogger("a").info("first " + "x" * 193)  # 200 bytes: full
                await aiolog.flush()
                with open("app.log.lock", "w") as f:
                    f.write(f"{sleeper.pid} {process_start_time(sleeper.pid)} "
                            f"{socket.gethostname()} {pid_namespace()} token\\n")
                for i in range(100):  # due for rotation: they wait in the queue
                    logging.getLogger("a").info("parent %d", i)
                for _ in range(600):
                    if h._writer.owner.stalled:
                        break
                    await asyncio.sleep(0.01)
                assert h._writer.owner.stalled and h.stats()["queued"] == 100
            asyncio.run(parent())
            pid = os.fork()
            if pid == 0:
                os.unlink("app.log.lock")
                logging.getLogger("a").info("child")
                aiolog.flush_sync()
                os._exit(0)
            assert os.waitpid(pid, 0)[1] == 0
            aiolog.flush_sync()
            sleeper.kill()
        """)
        records = [line for f in size_set(tmp_path) for line in lines(f)]
        assert [r for r in records if r.startswith("parent")] == [f"parent {i}" for i in range(100)]
        assert records.count("child") == 1


class TestReview:
    """Bugs an independent review of the redesign found, each reproduced first."""

    def test_a_signal_handler_flushing_while_handlers_start_never_deadlocks(
            self, tmp_path: Path) -> None:
        """flush_sync() from a plain signal handler firing every millisecond while handlers
        are created and log their first records (the owner thread starting, the producer in
        the middle of waking it) never deadlocks, and every record is written."""
        proc = run_script(tmp_path, """
            import faulthandler, logging, signal, aiolog
            faulthandler.dump_traceback_later(100, exit=True)
            current = []
            def on_alarm(signum, frame):
                if current:
                    current[-1].flush()
            signal.signal(signal.SIGALRM, on_alarm)
            signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
            for i in range(800):
                handler = aiolog.AsyncFileHandler(f"f{i % 20}.log")
                current.append(handler)
                handler.handle(logging.makeLogRecord({"msg": f"r{i}"}))
                current.pop()
                handler.close()
            signal.setitimer(signal.ITIMER_REAL, 0)
            print("done")
        """, timeout=120)
        assert proc.stdout.strip() == "done", proc.stderr
        written = sorted(line for f in tmp_path.glob("f*.log") for line in lines(f))
        assert written == sorted(f"r{i}" for i in range(800))

    async def test_after_shutdown_the_loop_never_waits_for_another_process(
            self, tmp_path: Path) -> None:
        """After shutdown() a log call on the loop writes synchronously, but when a rotation
        is due and another live process holds the lock, it writes into the current file
        instead of waiting for that process."""
        path = tmp_path / "app.log"
        lock = tmp_path / "app.log.lock"
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        try:
            await aiolog.configure(path, format="%(message)s", max_bytes=200, lock_timeout=600)
            logging.getLogger("a").info("x" * 150)
            await aiolog.shutdown()
            lock.write_text(f"{sleeper.pid} {process_start_time(sleeper.pid)} "
                            f"{socket.gethostname()} {pid_namespace()} token\n")
            watchdog = threading.Timer(60, lambda: lock.unlink(missing_ok=True))
            watchdog.start()
            logging.getLogger("a").info("after shutdown " + "y" * 100)  # due: past max_bytes
            assert lock.exists(), "a log call on the loop waited for another process's lock"
            watchdog.cancel()
        finally:
            sleeper.kill()
            sleeper.wait()
        assert lines(path) == ["x" * 150, "after shutdown " + "y" * 100]

    def test_a_child_forked_after_close_writes_its_records_by_itself(
            self, tmp_path: Path) -> None:
        """A handler closed before a fork stays closed in the child: the child's records are
        written synchronously, all of them, though no owner thread runs there."""
        run_script(tmp_path, """
            import logging, os, sys, aiolog
            handler = aiolog.AsyncFileHandler("app.log")
            handler.setFormatter(logging.Formatter("%(message)s"))
            logging.getLogger().addHandler(handler)
            handler.close()
            pid = os.fork()
            if pid == 0:
                for i in range(5000):
                    logging.getLogger("a").warning("child %d", i)
                sys.exit(0)
            assert os.waitpid(pid, 0)[1] == 0
        """)
        assert numbers(tmp_path / "app.log", "child ") == list(range(5000))

    async def test_queued_counts_records_not_flush_marks(self, tmp_path: Path) -> None:
        """stats()["queued"] counts the records waiting, not the flush() calls waiting."""
        stream = StuckStream()
        [handler] = await aiolog.configure(handlers=[aiolog.AsyncStreamHandler(stream)])
        logging.getLogger("a").warning("first")
        assert await asyncio.to_thread(stream.entered.wait, 60)
        logging.getLogger("a").warning("second")
        flushes = [asyncio.ensure_future(aiolog.flush()) for _ in range(3)]
        await asyncio.sleep(0)
        assert handler.stats()["queued"] == 2
        stream.release.set()
        await asyncio.gather(*flushes)
        assert handler.stats()["queued"] == 0
