"""The lean record path: aiolog's LogRecord factory makes exactly the stdlib's record."""

from __future__ import annotations

import asyncio
import copy
import logging
import logging.handlers
import multiprocessing
import os
import pickle
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import aiolog
from aiolog import _record
from aiolog._record import lean_record

# A moment with every edge the time arithmetic has: whole seconds, the last nanosecond of a
# second, a millisecond boundary, and an ordinary instant.
MOMENTS_NS = (1_764_000_000_000_000_000, 1_764_000_000_999_999_999, 1_764_000_001_999_500_000,
              1_764_000_002_123_456_789, 1_764_000_003_000_999_999)

Attributes = list[tuple[str, type, Any]]


class Capture(logging.Handler):
    """Keeps every record it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def _stdlib_factory() -> Iterator[None]:
    """Each test starts and ends with the stdlib's record factory."""
    logging.setLogRecordFactory(logging.LogRecord)
    yield
    logging.setLogRecordFactory(logging.LogRecord)


@pytest.fixture
def log() -> Iterator[logging.Logger]:
    """A logger whose records a Capture handler keeps."""
    logger = logging.getLogger("record-test")
    logger.handlers[:] = [Capture()]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger
    logger.handlers[:] = []


def attributes(record: logging.LogRecord) -> Attributes:
    """Every attribute in order, with its type: 1 == 1.0, but a record holding one is not
    the record holding the other."""
    return [(k, type(v), v) for k, v in record.__dict__.items()]


def made_both_ways(log: logging.Logger, call: Callable[[], object],
                   moment_ns: int = MOMENTS_NS[3]) -> tuple[logging.LogRecord, logging.LogRecord]:
    """The record ``call`` logs, made by the stdlib's factory and by ours, at one fixed time.

    ``call`` runs from one line for both, so the caller's line and function are the same.
    """
    capture = log.handlers[0]
    assert isinstance(capture, Capture)
    real_time, real_time_ns = time.time, time.time_ns
    # Both factories read the clock through the time module; the stdlib's float clock is the
    # same instant as the nanosecond one, as Python computes it.
    time.time, time.time_ns = (lambda: moment_ns / 1e9), (lambda: moment_ns)
    try:
        for factory in (logging.LogRecord, lean_record):
            logging.setLogRecordFactory(factory)
            call()
    finally:
        time.time, time.time_ns = real_time, real_time_ns
        logging.setLogRecordFactory(logging.LogRecord)
    stdlib, lean = capture.records[-2:]
    return stdlib, lean


def assert_same(stdlib: logging.LogRecord, lean: logging.LogRecord) -> None:
    assert type(lean) is type(stdlib) is logging.LogRecord
    assert attributes(lean) == attributes(stdlib)


def wrapper(logger: logging.Logger, message: str) -> None:
    logger.info(message, stacklevel=2)  # attributes the record to wrapper's caller


class TestAttributeByAttribute:
    """Every attribute of a lean record equals the stdlib's, in order, with its type."""

    def test_this_python_is_known(self) -> None:
        """On every Python we test, the stdlib records hold the attributes lean_record sets."""
        assert _record.KNOWN

    @pytest.mark.parametrize("moment_ns", MOMENTS_NS)
    def test_a_plain_call_at_every_edge_of_the_clock(self, log: logging.Logger,
                                                     moment_ns: int) -> None:
        """created, msecs and relativeCreated come out the same at second and millisecond edges."""
        assert_same(*made_both_ways(log, lambda: log.info("n=%d x=%s", 7, 3.2), moment_ns))

    def test_arguments_extra_and_a_mapping_argument(self, log: logging.Logger) -> None:
        """extra= fields, a lone mapping argument (args becomes the mapping) and odd arguments."""
        assert_same(*made_both_ways(log, lambda: log.warning("%(a)s", {"a": 1}, extra={"x": [1]})))
        assert_same(*made_both_ways(log, lambda: log.error("%s", {})))  # an empty mapping stays a tuple
        assert_same(*made_both_ways(log, lambda: log.info("%s", "text")))
        assert_same(*made_both_ways(log, lambda: log.info(("not", "a", "string"))))
        assert_same(*made_both_ways(log, lambda: log.log(25, "custom level %s", None)))

    def test_exc_info_stack_info_and_stacklevel(self, log: logging.Logger) -> None:
        """The exception, the rendered stack and the frame stacklevel= picks are the stdlib's."""
        try:
            raise ValueError("boom")
        except ValueError:
            stdlib, lean = made_both_ways(log, lambda: log.exception("failed"))
        assert lean.exc_info is not None and lean.exc_info[1] is stdlib.exc_info[1]  # type: ignore[index]
        assert_same(stdlib, lean)
        assert_same(*made_both_ways(log, lambda: log.info("with stack", stack_info=True)))
        stdlib, lean = made_both_ways(log, lambda: wrapper(log, "from the caller"))
        assert lean.funcName == "<lambda>" and lean.filename == "test_record.py"
        assert_same(stdlib, lean)

    def test_from_named_and_renamed_threads(self, log: logging.Logger) -> None:
        """threadName is the name the logging thread had when it logged."""
        pairs: list[tuple[logging.LogRecord, logging.LogRecord]] = []

        def work() -> None:
            pairs.append(made_both_ways(log, lambda: log.info("in a thread")))
            threading.current_thread().name = "renamed"
            pairs.append(made_both_ways(log, lambda: log.info("renamed")))

        thread = threading.Thread(target=work, name="worker-7")
        thread.start()
        thread.join()
        assert [lean.threadName for _, lean in pairs] == ["worker-7", "renamed"]
        for stdlib, lean in pairs:
            assert_same(stdlib, lean)
            assert lean.thread == thread.ident != threading.get_ident()

    def test_in_and_out_of_asyncio_tasks(self, log: logging.Logger) -> None:
        """taskName (Python 3.12+) is the logging task's name, or None outside a task."""
        async def main() -> list[tuple[logging.LogRecord, logging.LogRecord]]:
            async def handler() -> tuple[logging.LogRecord, logging.LogRecord]:
                await asyncio.sleep(0)
                return made_both_ways(log, lambda: log.info("in a task"))
            return list(await asyncio.gather(asyncio.create_task(handler(), name="req-1"),
                                             asyncio.create_task(handler(), name="req-2")))

        pairs = asyncio.run(main())
        pairs.append(made_both_ways(log, lambda: log.info("outside")))
        for stdlib, lean in pairs:
            assert_same(stdlib, lean)
        if sys.version_info >= (3, 12):
            assert [lean.taskName for _, lean in pairs] == ["req-1", "req-2", None]

    def test_with_the_documented_knobs_off(self, log: logging.Logger,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
        """logThreads, logProcesses, logMultiprocessing, logAsyncioTasks off: None, as the stdlib."""
        for knob in ("logThreads", "logProcesses", "logMultiprocessing", "logAsyncioTasks"):
            monkeypatch.setattr(logging, knob, False, raising=False)
        stdlib, lean = made_both_ways(log, lambda: log.info("knobs off"))
        assert lean.thread is lean.threadName is lean.process is lean.processName is None
        assert_same(stdlib, lean)

    def test_odd_paths_given_to_the_factory_itself(self) -> None:
        """LogRecord(...) called directly with paths no frame has: the same filename and module."""
        for path in ("", "noext", "/a/b/.hidden", "/a/b/c.tar.gz", "C:\\x\\y.py", None, 42, b"/a/b.py"):
            args: tuple[Any, ...] = ("n", logging.INFO, path, 1, "m", (), None)
            expected = logging.LogRecord(*args)
            got = lean_record(*args)
            assert (got.filename, got.module) == (expected.filename, expected.module), path

    def test_in_a_forked_child_and_a_multiprocessing_worker(self, tmp_path: Path) -> None:
        """processName and process after os.fork() and in a multiprocessing child are the stdlib's."""
        script = tmp_path / "child.py"
        script.write_text(CHILD_SCRIPT)
        proc = __import__("subprocess").run([sys.executable, str(script)], capture_output=True,
                                            text=True, timeout=120,
                                            env={**os.environ, "PYTHONPATH": str(Path(aiolog.__file__).parent.parent)})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.split() == ["fork:same:MainProcess", "mp:same:Worker-A"]


CHILD_SCRIPT = """
import logging, multiprocessing, os, sys, time
from aiolog._record import lean_record

def compare(tag):
    rec_args = ("n", logging.INFO, __file__, 1, "m %s", (1,), None, "f", None)
    time.time, time.time_ns = (lambda: 1.5), (lambda: 1_500_000_000)
    a, b = logging.LogRecord(*rec_args).__dict__, lean_record(*rec_args).__dict__
    same = [(k, type(v), v) for k, v in a.items()] == [(k, type(v), v) for k, v in b.items()]
    print(f"{tag}:{'same' if same else 'differs'}:{b['processName']}", flush=True)
    assert b["process"] == os.getpid()

if __name__ == "__main__":
    multiprocessing.set_start_method("fork")
    pid = os.fork()
    if pid == 0:
        compare("fork")
        os._exit(0)
    os.waitpid(pid, 0)
    p = multiprocessing.Process(target=compare, args=("mp",), name="Worker-A")
    p.start(); p.join()
    sys.exit(p.exitcode)
"""


class TestDictConsumers:
    """What reads record.__dict__ directly finds every attribute, as with the stdlib."""

    def test_pickling_copying_and_socket_handler(self, log: logging.Logger) -> None:
        """pickle, copy.copy and SocketHandler.makePickle carry the same attributes."""
        stdlib, lean = made_both_ways(log, lambda: log.info("pickled %s", 1, extra={"k": "v"}))
        assert attributes(pickle.loads(pickle.dumps(lean))) == attributes(stdlib)
        assert attributes(copy.copy(lean)) == attributes(stdlib)
        socket = logging.handlers.SocketHandler("127.0.0.1", 9)

        def sent(record: logging.LogRecord) -> dict[str, Any]:
            data: dict[str, Any] = pickle.loads(socket.makePickle(record)[4:])
            return data

        assert sent(lean) == sent(stdlib)
        socket.close()

    def test_queue_handler_and_make_log_record(self, log: logging.Logger) -> None:
        """QueueHandler.prepare and makeLogRecord give the same record with either factory."""
        stdlib, lean = made_both_ways(log, lambda: log.info("queued %s", 1))
        handler = logging.handlers.QueueHandler(queue.Queue())
        assert attributes(handler.prepare(lean)) == attributes(handler.prepare(stdlib))
        rebuilt = []
        for factory in (logging.LogRecord, lean_record):
            logging.setLogRecordFactory(factory)
            made = logging.makeLogRecord(stdlib.__dict__)
            rebuilt.append(attributes(made))
        assert rebuilt[0] == rebuilt[1] == attributes(stdlib)

    def test_formatters_see_every_field(self, log: logging.Logger) -> None:
        """A format naming every field gives the same line from either record."""
        fields = " ".join(f"%({k})s" for k in logging.LogRecord("n", 20, "p", 1, "m", None, None).__dict__)
        stdlib, lean = made_both_ways(log, lambda: log.info("shown %s", 1))
        formatter = logging.Formatter(fields)
        assert formatter.format(lean) == formatter.format(stdlib)
        json = aiolog.JsonFormatter(list(lean.__dict__))
        assert json.format(lean) == json.format(stdlib)


class TestInstalling:
    """install() takes the stdlib's place only, and uninstall() leaves others' factories."""

    def test_install_and_uninstall(self) -> None:
        """Installed over the stdlib's factory; uninstalled back to it."""
        assert _record.install() and logging.getLogRecordFactory() is lean_record
        assert _record.install()  # twice: still one, never chained to itself
        _record.uninstall()
        assert logging.getLogRecordFactory() is logging.LogRecord

    def test_a_python_with_records_it_does_not_know_keeps_the_stdlibs_factory(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Where LogRecord's attributes differ from lean_record's, install() changes nothing."""
        monkeypatch.setattr(_record, "KNOWN", False)
        assert not _record.install()
        assert logging.getLogRecordFactory() is logging.LogRecord

    def test_a_python_whose_msecs_keep_a_fraction_is_not_known(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Before gh-89047 (the first 3.10 releases) msecs kept the fraction of a millisecond:
        the attributes have the same names there, but lean_record's msecs would differ."""
        class BeforeGh89047(logging.LogRecord):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                self.msecs = (self.created - int(self.created)) * 1000 + 1e-6

        monkeypatch.setattr(_record, "_LogRecord", BeforeGh89047)
        assert not _record._known()

    def test_a_factory_installed_before_stays_and_one_installed_after_chains_to_ours(self) -> None:
        """OpenTelemetry's way (chain to the factory found) keeps working in both orders."""
        def chaining(old: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                record = old(*args, **kwargs)
                record.otelSpanID = "0"
                return record
            return factory

        theirs = chaining(logging.LogRecord)
        logging.setLogRecordFactory(theirs)
        assert not _record.install()
        assert logging.getLogRecordFactory() is theirs
        logging.setLogRecordFactory(logging.LogRecord)
        assert _record.install()
        after = chaining(logging.getLogRecordFactory())
        logging.setLogRecordFactory(after)
        record = logging.getLogger("x").makeRecord("x", logging.INFO, "p", 1, "m", (), None)
        assert record.otelSpanID == "0"
        _record.uninstall()  # someone's factory is on top of ours: it stays
        assert logging.getLogRecordFactory() is after

    async def test_configure_installs_it_by_default_and_puts_the_stdlibs_back_on_request(
            self, tmp_path: Path) -> None:
        """configure() makes records with lean_record; configure(records="stdlib") does not."""
        await aiolog.configure(tmp_path / "app.log")
        assert logging.getLogRecordFactory() is lean_record
        await aiolog.configure(tmp_path / "app.log", records="stdlib")
        assert logging.getLogRecordFactory() is logging.LogRecord
        await aiolog.shutdown()


class TestNoCaller:
    """records="no_caller" is the documented logging._srcfile = None, refused where it shows."""

    @pytest.fixture(autouse=True)
    def _srcfile_restored(self) -> Iterator[None]:
        """Each test leaves logging._srcfile as it found it."""
        saved = logging._srcfile  # type: ignore[attr-defined]
        yield
        logging._srcfile = saved  # type: ignore[attr-defined]
        _record._srcfile.clear()

    async def test_no_caller_until_configured_otherwise(self, tmp_path: Path,
                                                        log: logging.Logger) -> None:
        """With records="no_caller" records carry the stdlib's unknown caller and no stack;
        records="lean" finds the caller again."""
        found = logging._srcfile  # type: ignore[attr-defined]
        await aiolog.configure(tmp_path / "app.log", records="no_caller")
        assert logging._srcfile is None and logging.getLogRecordFactory() is lean_record  # type: ignore[attr-defined]
        log.warning("where?", stack_info=True)
        await aiolog.configure(tmp_path / "app.log", records="lean")
        assert logging._srcfile == found  # type: ignore[attr-defined]
        log.warning("here")
        await aiolog.shutdown()
        unknown, known = log.handlers[0].records  # type: ignore[attr-defined]
        assert (unknown.pathname, unknown.lineno, unknown.funcName, unknown.stack_info) == (
            "(unknown file)", 0, "(unknown function)", None)
        assert (known.pathname, known.funcName) == (__file__, "test_no_caller_until_configured_otherwise")

    @pytest.mark.parametrize("options", [
        {"format": "%(asctime)s %(filename)s:%(lineno)d %(message)s"},
        {"format": "{funcName} {message}", "style": "{"},
        {"formatter": aiolog.JsonFormatter(["time", "message", "pathname"])},
    ])
    async def test_refused_where_a_format_shows_the_caller(self, tmp_path: Path,
                                                           options: dict[str, Any]) -> None:
        """A format showing file, line or function refuses "no_caller" and changes nothing."""
        with pytest.raises(ValueError, match="records='no_caller' leaves .* unknown"):
            await aiolog.configure(tmp_path / "app.log", records="no_caller", **options)
        assert logging._srcfile is not None  # type: ignore[attr-defined]
        assert logging.getLogRecordFactory() is logging.LogRecord
        assert not logging.getLogger().handlers or not any(
            isinstance(h, aiolog.AsyncHandler) for h in logging.getLogger().handlers)

    async def test_a_bad_value_is_refused(self, tmp_path: Path) -> None:
        """records= takes "lean", "stdlib" or "no_caller" and says so."""
        with pytest.raises(ValueError, match="records must be one of 'lean', 'stdlib', 'no_caller'"):
            await aiolog.configure(tmp_path / "app.log", records="fast")  # type: ignore[arg-type]
