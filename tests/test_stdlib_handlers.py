"""AsyncFileHandler as a drop-in for the stdlib's file handlers, and a first hour without traps.

The classes ``TestCPythonFileHandler``, ``TestCPythonRotatingFileHandler`` and
``TestCPythonTimedRotatingFileHandler`` are our port of CPython 3.11's ``FileHandlerTest``,
``RotatingFileHandlerTest`` and ``TimedRotatingFileHandlerTest`` (``Lib/test/test_logging.py``),
keeping the stdlib's assertions where aiolog promises the same. The stdlib tests that do not
apply are listed, each with its reason, in README.md "Migrating from logging.handlers".
"""

from __future__ import annotations

import asyncio
import calendar
import datetime
import gzip
import io
import logging
import logging.config
import logging.handlers
import os
import pydoc
import re
import threading
import time
import typing
from pathlib import Path

import pytest

import aiolog

try:
    from aiolog.sinks import _rotation
except ImportError:  # the layout before sinks/ (67ce739), to show these tests failing there
    from aiolog import _rotation  # type: ignore[attr-defined,no-redef]

from .conftest import lines


def record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("n", logging.DEBUG, "p", 1, msg, None, None)


def emit_all(handler: logging.Handler, *messages: str) -> None:
    """Hand each message to the handler and write it, one at a time (as the stdlib does)."""
    for msg in messages:
        handler.handle(record(msg))
        handler.flush()


def backups(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir()
                  if p.name.startswith(path.name + ".") and not p.name.endswith(".lock"))


class TestDropIn:
    def test_a_rotating_dictconfig_with_only_the_class_changed_works(self, tmp_path: Path) -> None:
        """A RotatingFileHandler dictConfig (maxBytes, backupCount, encoding=None, delay,
        mode) works once only "class" changes, with the stdlib's meaning."""
        path = tmp_path / "app.log"
        handler_config = {"class": "logging.handlers.RotatingFileHandler", "filename": str(path),
                          "mode": "a", "maxBytes": 1000, "backupCount": 3, "encoding": None,
                          "delay": False, "errors": None}
        handler_config["class"] = "aiolog.AsyncFileHandler"
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False,
                                   "handlers": {"f": handler_config},
                                   "loggers": {"dropin": {"handlers": ["f"], "level": "INFO",
                                                          "propagate": False}}})
        log = logging.getLogger("dropin")
        for i in range(200):
            log.info("record %03d %s", i, "x" * 40)
        aiolog.flush_sync()
        assert backups(path) == ["app.log.1", "app.log.2", "app.log.3"]
        for name in ["app.log", *backups(path)]:
            assert (tmp_path / name).stat().st_size < 1000  # stdlib: rotate at >= maxBytes

    def test_a_timed_dictconfig_with_only_the_class_changed_works(self, tmp_path: Path) -> None:
        """A TimedRotatingFileHandler's options (when, interval, backupCount, utc, atTime) are
        taken as the stdlib spells them."""
        handler = aiolog.AsyncFileHandler(tmp_path / "app.log", when="W3", interval=2,
                                          backupCount=4, utc=True, atTime=datetime.time(3, 30))
        assert (handler.when, handler.interval, handler.backupCount) == ("W3", 2, 4)
        assert handler.atTime == datetime.time(3, 30)
        handler.close()

    @pytest.mark.parametrize("ours,theirs", [("max_bytes", "maxBytes"),
                                             ("backup_count", "backupCount")])
    def test_both_spellings_of_one_option_raise_naming_both(
            self, tmp_path: Path, ours: str, theirs: str) -> None:
        """max_bytes=/maxBytes= (and backup_count=/backupCount=) together raise, naming both,
        and leave no file open."""
        with pytest.raises(TypeError, match=f"{ours}=.*{theirs}="):
            aiolog.AsyncFileHandler(tmp_path / "app.log", **{ours: 5, theirs: 5})
        assert not (tmp_path / "app.log").exists()

    @pytest.mark.parametrize("hook", ["namer", "rotator"])
    def test_namer_and_rotator_are_refused_when_set(self, tmp_path: Path, hook: str) -> None:
        """Setting namer or rotator raises at once, saying to use compress=True; never ignored."""
        handler = aiolog.AsyncFileHandler(tmp_path / "app.log")
        try:
            with pytest.raises(TypeError, match="compress=True"):
                setattr(handler, hook, lambda *args: None)
            assert getattr(handler, hook) is None
            setattr(handler, hook, None)  # what BaseRotatingHandler.__init__ does: harmless
        finally:
            handler.close()

    def test_a_namer_in_dictconfig_fails_the_configuration(self, tmp_path: Path) -> None:
        """dictConfig's "." attributes reach the same refusal: the configuration fails loudly."""
        with pytest.raises(ValueError, match="Unable to configure handler"):
            logging.config.dictConfig({
                "version": 1, "disable_existing_loggers": False,
                "handlers": {"f": {"class": "aiolog.AsyncFileHandler",
                                   "filename": str(tmp_path / "app.log"),
                                   ".": {"namer": "x"}}},
            })

    def test_mode_w_is_refused_with_what_to_do(self, tmp_path: Path) -> None:
        """mode='w' raises (truncating a file other processes share would delete their
        records), saying what to do instead; mode='a' is accepted."""
        with pytest.raises(ValueError, match="always appends.*delete or rotate"):
            aiolog.AsyncFileHandler(tmp_path / "app.log", mode="w")
        aiolog.AsyncFileHandler(tmp_path / "app.log", mode="a").close()

    def test_do_rollover_says_what_to_do(self, tmp_path: Path) -> None:
        """doRollover() is not provided: it raises, naming the alternatives."""
        handler = aiolog.AsyncFileHandler(tmp_path / "app.log")
        try:
            with pytest.raises(NotImplementedError, match="max_bytes.*logrotate"):
                handler.doRollover()
        finally:
            handler.close()

    def test_at_time_where_the_stdlib_ignores_it_is_refused(self, tmp_path: Path) -> None:
        """atTime with when='H' (the stdlib ignores it there) raises rather than do nothing."""
        with pytest.raises(ValueError, match="atTime applies to when='midnight'"):
            aiolog.AsyncFileHandler(tmp_path / "app.log", when="H", atTime=datetime.time(1))


class TestWeekly:
    def test_weekly_rolls_over_when_the_stdlib_does(self, tmp_path: Path) -> None:
        """A file last written yesterday 10:00 UTC with when='W<yesterday>', utc=True is rotated
        today, by the stdlib and by aiolog alike (at the midnight ending the named day)."""
        now = time.time()
        today = now - now % 86400
        if now - today < 60:
            today -= 86400  # a minute after midnight: take the day before as "today"
        yesterday = time.gmtime(today - 86400)
        when = f"W{yesterday.tm_wday}"
        written = today - 86400 + 10 * 3600
        theirs, ours = tmp_path / "stdlib.log", tmp_path / "app.log"
        for path in (theirs, ours):
            path.write_text("old\n")
            os.utime(path, (written, written))
        stdlib = logging.handlers.TimedRotatingFileHandler(theirs, when=when, utc=True)
        stdlib.emit(record("new"))
        stdlib.close()
        handler = aiolog.AsyncFileHandler(ours, when=when, utc=True)
        emit_all(handler, "new")
        handler.close()
        assert len(backups(theirs)) == 1  # the stdlib rotated
        assert len(backups(ours)) == 1
        assert lines(ours) == ["new"]

    @pytest.mark.parametrize("at_time", [None, datetime.time(0), datetime.time(12, 30)])
    @pytest.mark.parametrize("when", ["MIDNIGHT", "W0", "W1", "W2", "W3", "W4", "W5", "W6"])
    def test_boundaries_are_the_stdlibs(self, tmp_path: Path, when: str,
                                        at_time: datetime.time | None) -> None:
        """For midnight and W0-W6 (utc, interval 1, with and without atTime), the next
        boundary from any moment is the stdlib's computeRollover() of it."""
        stdlib = logging.handlers.TimedRotatingFileHandler(
            tmp_path / "stdlib.log", when=when, utc=True, atTime=at_time, delay=True)
        policy = _rotation.TimePolicy.parse(when, 1, True, at_time)
        start = calendar.timegm((2023, 11, 13, 0, 0, 0))  # a Monday
        for hours in range(0, 24 * 15, 5):
            t = start + hours * 3600 + 17
            assert policy.next_boundary(t) == stdlib.computeRollover(t), (when, hours)
        stdlib.close()


class TestConfigure:
    def test_configure_after_a_dictconfig_on_the_same_file_writes_each_record_once(
            self, tmp_path: Path) -> None:
        """configure() replaces every root handler (as basicConfig(force=True)): a dictConfig
        AsyncFileHandler on the same file no longer doubles each record."""
        path = tmp_path / "app.log"
        logging.config.dictConfig({
            "version": 1, "disable_existing_loggers": False,
            "handlers": {"f": {"class": "aiolog.AsyncFileHandler", "filename": str(path)}},
            "root": {"level": "INFO", "handlers": ["f"]},
        })
        plain = logging.StreamHandler(io.StringIO())
        logging.getLogger().addHandler(plain)

        async def main() -> None:
            await aiolog.configure(path, format="%(message)s")
            for i in range(10):
                logging.getLogger("app").info("record %d", i)
            await aiolog.shutdown()

        asyncio.run(main())
        assert lines(path) == [f"record {i}" for i in range(10)]
        root = logging.getLogger()
        assert plain not in root.handlers and len(root.handlers) == 1

    def test_a_handler_another_logger_uses_leaves_the_root_but_stays_open(
            self, tmp_path: Path) -> None:
        """A dictConfig handler on the root and on "gunicorn.error" leaves the root logger but
        is not closed: the other logger's records are still queued, not written synchronously."""
        shared = aiolog.AsyncFileHandler(tmp_path / "shared.log")
        root, other = logging.getLogger(), logging.getLogger("gunicorn.error")
        root.addHandler(shared)
        other.addHandler(shared)
        try:
            asyncio.run(aiolog.configure(tmp_path / "app.log"))  # type: ignore[arg-type]
            assert shared not in root.handlers and not shared._closed
        finally:
            other.removeHandler(shared)
            shared.close()

    def test_configure_from_two_threads_at_once_keeps_one_handler(self, tmp_path: Path) -> None:
        """Two threads each running asyncio.run(configure(same file)) at once, again and again,
        leave one handler on the root logger, and every record is written once."""
        path = tmp_path / "app.log"
        for trial in range(15):
            barrier = threading.Barrier(2)

            def configure() -> None:
                barrier.wait()
                asyncio.run(aiolog.configure(path, format="%(message)s"))  # type: ignore[arg-type]

            threads = [threading.Thread(target=configure) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            root = logging.getLogger()
            ours = [h for h in root.handlers if isinstance(h, aiolog.AsyncHandler)]
            assert len(ours) == 1, (trial, root.handlers)
            logging.getLogger("app").warning("trial %d", trial)
        aiolog.flush_sync()
        assert lines(path) == [f"trial {i}" for i in range(15)]

    def test_configure_without_await_still_configures(self, tmp_path: Path) -> None:
        """A forgotten ``await`` still installs the handler: the work happens at the call."""
        path = tmp_path / "app.log"
        aiolog.configure(path, format="%(message)s")
        logging.getLogger("app").warning("configured")
        aiolog.flush_sync()
        assert lines(path) == ["configured"]

    def test_a_misspelt_format_field_is_refused_naming_it(self, tmp_path: Path) -> None:
        """format="%(levelnam)s" raises at configure(), naming the field and the right one."""
        with pytest.raises(ValueError, match="'levelnam'.*'levelname'"):
            asyncio.run(aiolog.configure(tmp_path / "app.log",
                                         format="%(asctime)s %(levelnam)s %(message)s"))
        assert not (tmp_path / "app.log").exists()

    @pytest.mark.parametrize("fmt,style", [("{levelnam} {message}", "{"),
                                           ("$levelnam $message", "$")])
    def test_a_misspelt_field_is_refused_in_every_style_and_in_dictconfig(
            self, fmt: str, style: str) -> None:
        """The same check runs where dictConfig sets a handler's formatter, in every style."""
        handler = aiolog.AsyncStreamHandler(io.StringIO())
        try:
            with pytest.raises(ValueError, match="'levelnam'"):
                handler.setFormatter(logging.Formatter(fmt, style=style))  # type: ignore[arg-type]
        finally:
            handler.close()

    def test_context_fields_are_declared_with_defaults(self, tmp_path: Path) -> None:
        """A context field declared with defaults= shows its default when unbound and the bound
        value inside a context, with nothing reported."""
        path = tmp_path / "app.log"

        async def main() -> None:
            await aiolog.configure(path, format="[%(request_id)s] %(message)s",
                                   defaults={"request_id": "-"})
            log = logging.getLogger("app")
            log.warning("outside")
            with aiolog.context(request_id="r-1"):
                log.warning("inside")
            await aiolog.shutdown()

        asyncio.run(main())
        assert lines(path) == ["[-] outside", "[r-1] inside"]

    def test_json_format_with_a_formatter_is_refused(self, tmp_path: Path) -> None:
        """format="json" together with formatter= raises instead of ignoring one of them."""
        with pytest.raises(TypeError, match="not both"):
            aiolog.configure(tmp_path / "app.log", format="json",
                             formatter=aiolog.JsonFormatter())

    def test_install_signal_handlers_outside_a_loop_says_where_to_call_it(self) -> None:
        """Called with no running loop, it says to call it from async code after configure."""
        with pytest.raises(RuntimeError, match="async code.*asyncio.run"):
            aiolog.install_signal_handlers()


class TestHelp:
    def test_help_tells_the_truth(self) -> None:
        """help(AsyncFileHandler) documents its own __init__ (not logging's "Initializes the
        instance"), the stdlib spellings, and no longer claims "block" writes synchronously."""
        text = pydoc.render_doc(aiolog.AsyncFileHandler, renderer=pydoc.plaintext)
        assert "Initializes the instance" not in text
        assert "writes synchronously" not in text
        assert "maxBytes" in text and "backupCount" in text
        init_doc = aiolog.AsyncFileHandler.__init__.__doc__ or ""
        assert init_doc.startswith("Check every option")
        assert (aiolog.AsyncStreamHandler.__init__.__doc__ or "").startswith("Check the options")

    def test_version_is_the_distributions(self) -> None:
        """aiolog.__version__ is the version pyproject.toml declares."""
        pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
        version = re.search(r'^version = "(.+)"', pyproject, re.M)
        assert version and aiolog.__version__ == version[1]

    def test_when_is_a_literal_in_the_type_hints(self) -> None:
        """``when`` is typed as the Literal of its values, so mypy catches a typo."""
        hints = typing.get_type_hints(aiolog.AsyncFileHandler.__init__)
        values = {arg for part in typing.get_args(hints["when"])
                  for arg in typing.get_args(part)}
        assert {"midnight", "W0", "W6", "H"} <= values and "hourly" not in values


class TestCPythonFileHandler:
    def test_delay(self, tmp_path: Path) -> None:
        """delay=True: no file until the first record is written."""
        fn = tmp_path / "test.log"
        fh = aiolog.AsyncFileHandler(fn, encoding="utf-8", delay=True)
        assert not fn.exists()
        fh.handle(logging.makeLogRecord({}))
        fh.flush()
        assert fn.exists()
        fh.close()


class TestCPythonRotatingFileHandler:
    def test_should_not_rollover(self, tmp_path: Path) -> None:
        """maxBytes=0 never rotates; a special file (os.devnull) is never rotated."""
        fn = tmp_path / "test.log"
        rh = aiolog.AsyncFileHandler(fn, encoding="utf-8", maxBytes=0)
        emit_all(rh, *["x" * 100] * 5)
        assert rh.stats()["rotations"] == 0 and backups(fn) == []
        rh.close()
        rh = aiolog.AsyncFileHandler(os.devnull, encoding="utf-8", maxBytes=1)
        emit_all(rh, "a", "b", "c")
        assert rh.stats()["rotations"] == 0 and not os.path.exists(os.devnull + ".lock")
        rh.close()

    def test_should_rollover(self, tmp_path: Path) -> None:
        """With maxBytes=1 the next record after one in the file rotates it."""
        fn = tmp_path / "test.log"
        rh = aiolog.AsyncFileHandler(fn, encoding="utf-8", maxBytes=1)
        emit_all(rh, "1", "2")
        assert rh.stats()["rotations"] == 1
        rh.close()

    def test_file_created(self, tmp_path: Path) -> None:
        """The file is created by the handler."""
        fn = tmp_path / "test.log"
        rh = aiolog.AsyncFileHandler(fn, encoding="utf-8")
        emit_all(rh, "1")
        assert fn.exists()
        rh.close()

    def test_rollover_filenames(self, tmp_path: Path) -> None:
        """backupCount=2, maxBytes=1: three records give test.log, .1 and .2 and no .3 (the
        stdlib test's namer part is refused: see test_namer_and_rotator_are_refused_when_set)."""
        fn = tmp_path / "test.log"
        rh = aiolog.AsyncFileHandler(fn, encoding="utf-8", backupCount=2, maxBytes=1)
        emit_all(rh, "1")
        assert fn.exists()
        emit_all(rh, "2")
        assert Path(f"{fn}.1").exists()
        emit_all(rh, "3")
        assert Path(f"{fn}.2").exists()
        assert not Path(f"{fn}.3").exists()
        emit_all(rh, "4")
        assert not Path(f"{fn}.3").exists()
        assert [lines(Path(f"{fn}{s}")) for s in ("", ".1", ".2")] == [["4"], ["3"], ["2"]]
        rh.close()

    def test_namer_rotator_inheritance(self) -> None:
        """A subclass defining namer or rotator is refused when the class is created."""
        with pytest.raises(TypeError, match="compress=True"):
            class HandlerWithNamer(aiolog.AsyncFileHandler):
                def namer(self, name: str) -> str:  # type: ignore[override]
                    return name + ".test"

    def test_rotator(self, tmp_path: Path) -> None:
        """The stdlib test's compressing rotator is compress=True here: .1.gz then .2.gz hold
        the first record, as the stdlib's zlib rotator does."""
        fn = tmp_path / "test.log"
        rh = aiolog.AsyncFileHandler(fn, encoding="utf-8", backupCount=2, maxBytes=1,
                                     compress=True)
        emit_all(rh, "m1")
        assert fn.exists()
        emit_all(rh, "m2")
        aiolog.flush_sync()
        emit_all(rh, "m3")
        rh.close()
        assert gzip.decompress(Path(f"{fn}.2.gz").read_bytes()) == b"m1\n"
        assert gzip.decompress(Path(f"{fn}.1.gz").read_bytes()) == b"m2\n"
        assert not Path(f"{fn}.3.gz").exists()


class TestCPythonTimedRotatingFileHandler:
    def test_should_not_rollover(self) -> None:
        """A special file (os.devnull) is never rotated by time either."""
        fh = aiolog.AsyncFileHandler(os.devnull, when="S", encoding="utf-8", backupCount=1)
        emit_all(fh, "a")
        time.sleep(1.1)
        emit_all(fh, "testing - device file")
        assert fh.stats()["rotations"] == 0 and not os.path.exists(os.devnull + ".lock")
        fh.close()

    def test_rollover(self, tmp_path: Path) -> None:
        """when='S': a record a little over a second later goes to a new file, and the old one
        is named by a second of the last five minutes, in the stdlib's suffix format."""
        fn = tmp_path / "test.log"
        fh = aiolog.AsyncFileHandler(fn, when="S", encoding="utf-8", backupCount=1)
        fh.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        emit_all(fh, "testing - initial")
        assert fn.exists()
        time.sleep(1.1)
        emit_all(fh, "testing - after delay")
        fh.close()
        now = datetime.datetime.now()
        names = {f"test.log{(now - datetime.timedelta(seconds=s)).strftime('.%Y-%m-%d_%H-%M-%S')}"
                 for s in range(5 * 60)}
        assert names & set(backups(fn)), backups(fn)

    @pytest.mark.parametrize("when", ["X", "W", "W7"])
    def test_invalid(self, tmp_path: Path, when: str) -> None:
        """Unknown when values raise ValueError."""
        with pytest.raises(ValueError):
            aiolog.AsyncFileHandler(tmp_path / "test.log", when=when,  # type: ignore[arg-type]
                                    encoding="utf-8", delay=True)

    def test_compute_rollover_daily_attime(self) -> None:
        """midnight with atTime 12:00 (utc): from 0 the next boundary is 12:00, from 13:00 it
        is 12:00 the next day."""
        policy = _rotation.TimePolicy.parse("MIDNIGHT", 1, True, datetime.time(12, 0, 0))
        assert policy.next_boundary(0) == 12 * 60 * 60
        assert policy.next_boundary(13 * 60 * 60) == 36 * 60 * 60

    def test_compute_rollover_weekly_attime(self) -> None:
        """W<day> with atTime 12:00 (utc) rolls over on that weekday at 12:00."""
        current = int(time.time())
        today = current - current % 86400
        wday = time.gmtime(today).tm_wday
        for day in range(7):
            policy = _rotation.TimePolicy.parse(f"W{day}", 1, True, datetime.time(12, 0, 0))
            expected = (7 - wday + day) if wday > day else (day - wday)
            expected = today + expected * 24 * 60 * 60 + 12 * 60 * 60
            assert policy.next_boundary(today) == expected
            if day == wday:
                expected += 7 * 24 * 60 * 60  # goes into the following week
            assert policy.next_boundary(today + 13 * 60 * 60) == expected

    def test_compute_files_to_delete(self, tmp_path: Path) -> None:
        """Retention deletes only the file's own backups: a.b.log keeps 7 of its own, and
        a.b.c.log's backups are untouched (the stdlib test's namer part does not apply)."""
        dt = datetime.datetime(2023, 11, 14, 10, 0, 0)
        times = [(dt + datetime.timedelta(seconds=5 * i)).strftime("%Y-%m-%d_%H-%M-%S")
                 for i in range(10)]
        for prefix in ("a.b", "a.b.c"):
            for t in times:
                (tmp_path / f"{prefix}.log.{t}").touch()
        current = tmp_path / "a.b.log"
        current.write_text("old\n")
        os.utime(current, (time.time() - 3600, time.time() - 3600))  # due at once
        handler = aiolog.AsyncFileHandler(current, when="s", interval=5, backupCount=7)
        emit_all(handler, "new")
        handler.close()
        assert len(backups(current)) == 7
        assert len([p for p in tmp_path.iterdir() if p.name.startswith("a.b.c.log.")]) == 10

    @pytest.mark.parametrize("when,exp", [
        ("S", 1), ("M", 60), ("H", 60 * 60), ("D", 60 * 60 * 24), ("MIDNIGHT", 60 * 60 * 24),
        ("W0", 5 * 60 * 60 * 24),  # the epoch is a Thursday; W0 ends Monday at 24:00
    ])
    def test_compute_rollover(self, when: str, exp: int) -> None:
        """From the epoch (utc) the first boundary is the stdlib's."""
        assert _rotation.TimePolicy.parse(when, 1, True).next_boundary(0.0) == exp
