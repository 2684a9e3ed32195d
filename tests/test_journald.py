"""journald: records reach a real ``systemd-journald`` (a namespace of the test's own), once.

The handler speaks the native protocol on the namespace's socket; the tests read the entries
back with ``journalctl -D DIR -o json``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import aiolog
from aiolog._journald import entry, field_name

from .conftest import run_script
from .daemons import (  # noqa: F401 (journald is a fixture)
    Journald, journald, start_journald, wait_until)


def _handler(daemon: Journald, identifier: str, **options: object) -> aiolog.AsyncJournalHandler:
    return aiolog.AsyncJournalHandler(socket_path=daemon.socket, identifier=identifier,
                                      **options)  # type: ignore[arg-type]


_PREFIX = "test_journald."
_used: list[logging.Logger] = []


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    """A logger of this module's own (``test_journald.NAME``) writing only to ``handler``."""
    logger = logging.getLogger(_PREFIX + name)
    logger.propagate = False
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    _used.append(logger)
    return logger


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    """The loggers a test set up propagate again, without handlers, after it."""
    yield
    while _used:
        logger = _used.pop()
        logger.handlers = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def _ids(entries: list[dict[str, object]]) -> Counter[int]:
    return Counter(int(str(entry["MESSAGE"]).rsplit(" ", 1)[1]) for entry in entries)


class TestEntries:
    def test_field_names_are_what_journald_keeps(self) -> None:
        """Names are upper-cased to [A-Z0-9_], cut to 64, never start with a digit or ``_``."""
        assert field_name("user_id") == "USER_ID"
        assert field_name("request-id.v2") == "REQUEST_ID_V2"
        assert field_name("_private") == "PRIVATE"
        assert field_name("2fa") == "X_2FA"
        assert field_name("é") == "X_"
        assert field_name("k" * 80) == "K" * 64

    def test_a_value_with_a_newline_uses_the_length_form(self) -> None:
        """A value holding a newline is NAME, LF, its UTF-8 length as little-endian u64, the
        value, LF; others are NAME=value LF."""
        assert entry([("A", "x=1"), ("B", "two\nlines"), ("C", "é\n")]).encode("latin-1") == (
            b"A=x=1\n" + b"B\n" + struct.pack("<Q", 9) + b"two\nlines\n"
            + b"C\n" + struct.pack("<Q", 3) + "é\n".encode() + b"\n")

    def test_names_that_become_the_same_are_both_kept(self, tmp_path: Path) -> None:
        """Two fields whose names sanitise alike are both sent; one named like aiolog's own
        replaces it; the entry is built on the caller, without journald."""
        handler = aiolog.AsyncJournalHandler(socket_path=str(tmp_path / "none"))
        record = logging.makeLogRecord({"msg": "m", "request-id": "a", "request_id": "b",
                                        "priority": "high"})
        entry = handler.line(record).encode("latin-1")
        assert b"REQUEST_ID=a\n" in entry and b"REQUEST_ID=b\n" in entry
        assert entry.count(b"PRIORITY=") == 1 and b"PRIORITY=high\n" in entry
        handler.close()


class TestJournald:
    def test_ten_thousand_records_arrive_once(self, journald: Journald) -> None:
        """10,000 records logged from two threads all become journal entries, each exactly once."""
        handler = _handler(journald, "tenk")
        logger = _logger("tenk", handler)

        def produce(start: int) -> None:
            for i in range(start, start + 5_000):
                logger.info("record %d", i)

        threads = [threading.Thread(target=produce, args=(n,)) for n in (0, 5_000)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        handler.close()
        assert handler.stats()["written"] == 10_000
        entries = journald.wait_for(10_000, SYSLOG_IDENTIFIER="tenk")
        assert _ids(entries) == Counter(range(10_000))

    def test_traceback_is_one_entry_with_the_fields(self, journald: Journald) -> None:
        """A multi-line traceback is one entry; the record's own fields are journal fields."""
        handler = _handler(journald, "tb")
        logger = _logger("app.tb", handler)
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            logger.exception("failed on %s", "line one\nline two")
        handler.flush()
        [entry] = journald.wait_for(1, SYSLOG_IDENTIFIER="tb")
        message = str(entry["MESSAGE"])
        assert message.startswith("failed on line one\nline two\nTraceback (most recent call last)")
        assert message.endswith("ValueError: bad\nvalue")
        assert str(entry["EXCEPTION_TEXT"]).startswith("Traceback")
        assert entry["PRIORITY"] == "3"
        assert entry["LOGGER"] == _PREFIX + "app.tb"
        assert entry["CODE_FILE"] == __file__
        assert entry["CODE_FUNC"] == "test_traceback_is_one_entry_with_the_fields"
        assert int(str(entry["CODE_LINE"])) > 0
        handler.close()

    def test_extra_and_context_fields_become_journal_fields(self, journald: Journald) -> None:
        """``extra`` and bound context fields arrive under their sanitised names, none dropped."""
        handler = _handler(journald, "extra")
        logger = _logger("extra", handler)
        with aiolog.context(tenant="acme", user_id="from-context"):
            logger.warning("hello", extra={"user_id": 7, "request-id": "abc", "_private": 1,
                                           "2fa": "yes", "k" * 80: "long", "note": "a\nb",
                                           "syslog_identifier": "worker"})
        handler.flush()
        [entry] = journald.wait_for(1, SYSLOG_IDENTIFIER="worker")
        assert entry["USER_ID"] == "7"  # extra wins over the bound field of the same name
        assert entry["TENANT"] == "acme"
        assert entry["REQUEST_ID"] == "abc"
        assert entry["PRIVATE"] == "1"
        assert entry["X_2FA"] == "yes"
        assert entry["K" * 64] == "long"
        assert entry["NOTE"] == "a\nb"
        assert entry["PRIORITY"] == "4"
        assert entry["MESSAGE"] == "hello"
        handler.close()

    def test_entry_larger_than_the_send_buffer_arrives(self, journald: Journald) -> None:
        """An entry larger than the socket's send buffer goes in a sealed memfd and arrives whole."""
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024 * 1024)
        buffer = probe.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        probe.close()
        handler = _handler(journald, "big")
        logger = _logger("big", handler)
        body = "".join(f"{i:08d}" for i in range(buffer // 8 + 8192))  # beyond the buffer
        logger.info("big %s", body)
        logger.info("small after it")
        handler.flush()
        assert handler.stats()["memfds"] == 1
        entries = journald.wait_for(2, SYSLOG_IDENTIFIER="big")
        assert [entry["MESSAGE"] for entry in entries] == [f"big {body}", "small after it"]
        handler.close()

    def test_records_wait_while_journald_restarts(self, journald: Journald) -> None:
        """Records logged while journald is stopped wait, and arrive once it is back."""
        handler = _handler(journald, "restart", max_queue=100)
        logger = _logger("restart", handler)
        logger.info("record 0")
        handler.flush()
        journald.wait_for(1, SYSLOG_IDENTIFIER="restart")
        journald.stop()
        for i in range(1, 1_001):  # past max_queue: the loop-less caller is never held up
            logger.info("record %d", i)
        assert handler.stats()["queued"] > 0
        journald.start()
        handler.flush()
        entries = journald.wait_for(1_001, SYSLOG_IDENTIFIER="restart")
        assert _ids(entries) == Counter(range(1_001))
        assert handler.stats()["dropped"] == 0
        handler.close()

    def test_frozen_journald_stalls_the_owner_not_the_caller(self, journald: Journald) -> None:
        """A frozen journald (its socket queue full) makes the owner's send time out and retry,
        never the caller wait; once it resumes, every record arrives once."""
        handler = _handler(journald, "frozen", max_queue=10)
        logger = _logger("frozen", handler)
        assert journald.process is not None
        journald.process.send_signal(signal.SIGSTOP)
        try:
            for i in range(300):  # far past max_queue and journald's socket queue
                logger.info("record %d", i)
            wait_until(lambda: handler._writer.owner.stalled, "a send to time out")
            assert handler.stats()["queued"] > 10
        finally:
            journald.process.send_signal(signal.SIGCONT)
        handler.flush()
        entries = journald.wait_for(300, SYSLOG_IDENTIFIER="frozen")
        assert _ids(entries) == Counter(range(300))
        handler.close()

    async def test_shutdown_gives_a_frozen_journald_a_deadline(self, journald: Journald) -> None:
        """``aclose()`` with journald frozen returns after its grace, counting what it could not
        send as errors: every record is either sent or counted, none silently lost."""
        handler = _handler(journald, "stuck")
        logger = _logger("stuck", handler)
        assert journald.process is not None
        journald.process.send_signal(signal.SIGSTOP)
        try:
            for i in range(100):
                logger.info("record %d", i)
            await asyncio.wait_for(handler.aclose(), 60)  # a hang guard, not a speed
        finally:
            journald.process.send_signal(signal.SIGCONT)
        stats = handler.stats()
        assert stats["errors"] > 0 and stats["written"] + stats["errors"] == 100
        entries = journald.wait_for(stats["written"], SYSLOG_IDENTIFIER="stuck")
        assert _ids(entries) == Counter(range(stats["written"]))

    def test_configure_refuses_a_bad_journald_value(self, tmp_path: Path) -> None:
        """``configure(journald=3)`` raises before anything is built or changed."""
        before = logging.getLogger().handlers[:]
        with pytest.raises(TypeError, match="journald must be"):
            asyncio.run(aiolog.configure(tmp_path / "app.log", journald=3))  # type: ignore[arg-type]
        assert logging.getLogger().handlers == before
        assert not (tmp_path / "app.log").exists()

    def test_restart_mid_stream_loses_only_the_socket_queue(self, journald: Journald) -> None:
        """Stopped mid-stream and restarted, journald gets every record once, except those
        already queued in its own socket when it exited (a journald without systemd holding
        its socket loses them; at most the kernel's datagram queue length, plus one)."""
        handler = _handler(journald, "mid")
        logger = _logger("mid", handler)

        def produce() -> None:
            for i in range(5_000):
                logger.info("record %d", i)
                if i == 1_000:
                    stopped.set()

        stopped = threading.Event()
        thread = threading.Thread(target=produce)
        thread.start()
        stopped.wait()
        journald.stop()
        journald.start()
        thread.join()
        logger.info("end")  # journald reads its socket in order: after this, all is in
        handler.flush()
        assert handler.stats()["written"] == 5_001
        journald.wait_for(1, SYSLOG_IDENTIFIER="mid", MESSAGE="end")
        entries = [e for e in journald.entries(SYSLOG_IDENTIFIER="mid") if e["MESSAGE"] != "end"]
        ids = _ids(entries)
        assert max(ids.values()) == 1  # none twice
        queue_length = int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text())
        assert 5_000 - queue_length - 1 <= len(ids)

    def test_loop_never_waits_for_a_missing_journald(self, tmp_path: Path) -> None:
        """With no journald, the constructor succeeds, log calls on the loop never wait (the
        queue grows past ``max_queue``, nothing dropped), and exit does not hang."""
        proc = run_script(tmp_path, f"""
            import asyncio, logging, aiolog

            async def main():
                handler = aiolog.AsyncJournalHandler(socket_path={str(tmp_path / "none")!r},
                                                     max_queue=10)
                logger = logging.getLogger("x")
                logger.addHandler(handler)
                for i in range(500):  # with overflow="block", a wait here would be for ever
                    logger.warning("record %d", i)
                stats = handler.stats()
                print(stats["queued"], stats["dropped"])

            asyncio.run(main())
        """, timeout=60)  # a hang guard, not a speed
        assert proc.stdout.split() == ["500", "0"]
        assert "FileNotFoundError" in proc.stderr  # reported, with the reason

    async def test_journald_down_at_start_then_up(self, tmp_path: Path) -> None:
        """Records logged before journald is up wait, and arrive once it starts."""
        directory = tmp_path / "late"
        handler = _handler(Journald(directory), "late", max_queue=10)
        logger = _logger("late", handler)
        for i in range(500):
            logger.info("record %d", i)
        assert handler.stats()["queued"] == 500
        daemon = start_journald(directory)
        try:
            await asyncio.wait_for(handler.aflush(), 60)  # a hang guard, not a speed
            entries = daemon.wait_for(500, SYSLOG_IDENTIFIER="late")
            assert _ids(entries) == Counter(range(500))
        finally:
            handler.close()
            daemon.stop()

    async def test_shutdown_does_not_wait_for_a_missing_journald(self, tmp_path: Path) -> None:
        """``aclose()`` with journald gone returns, counting what it could not send as errors."""
        daemon = Journald(tmp_path / "never")
        handler = _handler(daemon, "never")
        logger = _logger("never", handler)
        for i in range(10):
            logger.info("record %d", i)
        await asyncio.wait_for(handler.aclose(), 60)  # a hang guard, not a speed
        assert handler.stats()["errors"] == 10
        assert handler.stats()["written"] == 0

    async def test_configure_adds_journald_beside_the_file(self, journald: Journald,
                                                           tmp_path: Path) -> None:
        """``configure(journald=...)`` installs the journal handler beside the file handler."""
        log = tmp_path / "app.log"
        handlers = await aiolog.configure(log, journald=journald.socket)
        assert [type(h) for h in handlers] == [aiolog.AsyncFileHandler,
                                               aiolog.AsyncJournalHandler]
        logging.getLogger("both").warning("to both %d", 1)
        await aiolog.shutdown()
        assert log.read_text().endswith("WARNING both: to both 1\n")
        identifier = handlers[1].identifier  # type: ignore[attr-defined]
        [entry] = journald.wait_for(1, SYSLOG_IDENTIFIER=identifier, LOGGER="both")
        assert entry["MESSAGE"] == "to both 1"


def test_bad_arguments_are_refused_at_construction() -> None:
    """A bad identifier, queue option or socket path raises a clear error in the constructor."""
    with pytest.raises(TypeError, match="identifier"):
        aiolog.AsyncJournalHandler(identifier=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_queue"):
        aiolog.AsyncJournalHandler(max_queue=0)
    with pytest.raises(TypeError):
        aiolog.AsyncJournalHandler(socket_path=5)  # type: ignore[arg-type]

