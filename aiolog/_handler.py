"""The ``logging.Handler`` side: format the record at the call, queue the line, never block."""

from __future__ import annotations

import datetime
import logging
import os
import sys
from typing import Final, TextIO

from . import _options
from ._context import add_trace_ids
from ._format import FastFormatter, fast_equivalent
from ._json import JsonFormatter
from ._options import When
from ._queue import Overflow
from ._registry import file_writer, release_writer, stream_writer
from ._writer import Writer

DEFAULT_MAX_QUEUE = 10_000
_OTEL_TRACE: Final = "opentelemetry.trace"
_modules: Final = sys.modules
_DEFAULT_FORMATTER = FastFormatter()


def _safe_repr(value: object) -> str:
    if type(value) is tuple:  # keep the arguments that can be shown
        inner = ", ".join(map(_safe_repr, value))
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__} object (repr failed)>"


class AsyncHandler(logging.Handler):
    """Base of aiolog's handlers: ``emit()`` takes microseconds and never touches I/O."""

    terminator = "\n"
    _writer: Writer
    _closed = False
    _own_line = True  # line() and format() are this class's: emit() may do their work inline

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls._own_line = cls.line is AsyncHandler.line and cls.format is AsyncHandler.format

    @property
    def _released(self) -> bool:
        """No writer to use: closed, or never given one (a constructor that raised).

        logging.shutdown() flushes and closes at exit every handler it ever saw, also one whose
        subclass constructor failed after Handler.__init__: then flush() and close() do nothing.
        """
        return self._closed or "_writer" not in self.__dict__

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        """Set the formatter; a plain ``logging.Formatter`` is swapped for the same-output fast one."""
        super().setFormatter(fast_equivalent(fmt))

    def format(self, record: logging.LogRecord) -> str:
        return (self.formatter or _DEFAULT_FORMATTER).format(record)

    def handle(self, record: logging.LogRecord) -> logging.LogRecord | bool:  # type: ignore[override]
        """Filter and emit, as ``logging.Handler.handle`` does, without taking the handler's lock.

        The lock serializes I/O, and ``emit()`` does none: it formats (FastFormatter is safe
        to share between threads) and appends to a thread-safe queue.
        """
        result: logging.LogRecord | bool = True
        if self.filters:
            result = self.filter(record)
            if not result:
                return result
            if isinstance(result, logging.LogRecord):  # Python 3.12+: a filter may replace it
                record = result
        self.emit(record)
        return result

    def emit(self, record: logging.LogRecord) -> None:
        """Format the record now and queue the line; the writer does the I/O.

        The formatted line is the snapshot: arguments mutated after the call cannot change it,
        and no traceback frames are kept alive in the queue. Formatting here rather than in the
        writer also costs less than copying the record would (and a thread's records are
        formatted on that thread, not on the event loop).
        """
        try:
            if self._own_line:  # line() and format() as below, without their two calls
                if _OTEL_TRACE in _modules:
                    add_trace_ids(record)
                try:
                    line = (self.formatter or _DEFAULT_FORMATTER).format(record) + self.terminator
                except RecursionError:
                    raise
                except Exception:
                    line = self._failed_line(record)
            else:
                line = self.line(record)
            self._writer.submit((self, line))
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def line(self, record: logging.LogRecord) -> str:
        """The record formatted and terminated; a record that cannot be is reported, not lost."""
        if _OTEL_TRACE in _modules:  # only an application using OpenTelemetry pays for its ids
            add_trace_ids(record)
        try:
            return self.format(record) + self.terminator
        except RecursionError:
            raise
        except Exception:
            return self._failed_line(record)

    def _failed_line(self, record: logging.LogRecord) -> str:
        """Called inside the ``except`` of a failed format: report it, keep the record."""
        self.handleError(record)
        return self._unformattable(record) + self.terminator

    def _unformattable(self, record: logging.LogRecord) -> str:
        """The line for a record that could not be formatted: what can be shown of it."""
        try:
            message = f"{record.getMessage()} (aiolog: record could not be formatted)"
        except Exception:
            message = (f"{_safe_repr(record.msg)} % {_safe_repr(record.args)} "
                       "(aiolog: message could not be formatted)")
        if record.exc_info:
            message += f" {_safe_repr(record.exc_info[1])}"
        plain = logging.makeLogRecord({**record.__dict__, "msg": message, "args": None,
                                       "exc_info": None, "exc_text": None, "stack_info": None})
        try:
            return self.format(plain)
        except Exception:  # the formatter itself is broken: keep the record anyway
            if isinstance(self.formatter, JsonFormatter):  # a JSON file stays all JSON
                return self.formatter.unformattable(record, message)
            return f"{record.levelname} {record.name}: {message}"

    def stats(self) -> dict[str, int]:
        """Counts of this handler's writer: written, dropped, rotations, errors, queued."""
        return self._writer.stats()

    def flush(self) -> None:
        """Write everything queued before returning (blocks: prefer ``await aiolog.flush()``)."""
        if not self._released:
            self._writer.flush_sync()

    async def aflush(self) -> None:
        """Return once every record this handler took so far is written."""
        await self._writer.flush()

    def close(self) -> None:
        try:
            if not self._released:
                self._closed = True
                self._release()
        finally:
            super().close()

    async def aclose(self) -> None:
        """Drain and close without blocking the event loop."""
        try:
            if not self._released:
                self._closed = True
                if self._writer.users == 1:
                    await self._writer.aclose()
                self._release()
        finally:
            super().close()

    def _release(self) -> None:
        self._writer.close()


class AsyncFileHandler(AsyncHandler):
    """Log to a file, rotated by size and/or time, safely shared by many processes.

    A drop-in for ``FileHandler``, ``RotatingFileHandler`` and ``TimedRotatingFileHandler``:
    their option names are accepted too (``maxBytes``, ``backupCount``, ``atTime``, ``delay``,
    ``mode``, ``encoding=None``, ``errors``); README.md "Migrating from logging.handlers" lists
    every difference. Records are queued in microseconds; a thread of this handler's own writes
    them, so the event loop never waits for the disk.
    """

    def __init__(self, filename: str | os.PathLike[str], *, mode: str = "a",
                 max_bytes: int | None = None, maxBytes: int | None = None,
                 when: When | None = None, interval: int = 1, utc: bool = False,
                 atTime: datetime.time | None = None,
                 backup_count: int | None = None, backupCount: int | None = None,
                 compress: bool = False, lock_timeout: float = 10.0,
                 max_queue: int = DEFAULT_MAX_QUEUE, overflow: Overflow = "block",
                 encoding: str | None = None, errors: str | None = None, delay: bool = False,
                 level: int | str = logging.NOTSET) -> None:
        """Check every option, create missing directories and open the file.

        Args:
            filename: the log file; missing parent directories are created.
            mode: ``"a"`` only: the file is shared, so it is never truncated (``"w"`` raises).
            max_bytes, maxBytes: rotate before a record would make the file reach this size,
                as ``RotatingFileHandler`` does; 0 (the default) turns size rollover off.
            when, interval, utc, atTime: time rollover, with ``TimedRotatingFileHandler``'s
                values; boundaries follow the clock (``"H"`` rotates on the hour), so every
                process sharing the file agrees on them. ``None`` (the default): no time
                rollover.
            backup_count, backupCount: how many rotated files to keep; 0 (the default) keeps all.
            compress: gzip rotated files in a thread, off the event loop.
            lock_timeout: seconds after which a rotation lock is stale whoever holds it.
            max_queue: records waiting at most; then ``overflow`` applies.
            overflow: ``"block"`` (the default) makes a caller that finds the queue full wait
                until the writer thread takes the next chunk, losing nothing (never while the
                sink is stalled: then the queue grows past ``max_queue``); ``"drop"`` drops,
                counts, and later logs how many were dropped.
            encoding: ``None`` means UTF-8 (not the locale's: processes sharing the file must
                agree).
            errors: ``None`` means ``"backslashreplace"``: unencodable text is escaped, not lost.
            delay: as ``FileHandler``: create the file at the first write, not here.
            level: the handler's level.

        Either spelling of an option works; both at once raise ``TypeError``.
        """
        # Everything is checked, the directory made and the writer opened before
        # Handler.__init__ registers this handler with logging: a constructor that raises
        # leaves nothing behind for logging.shutdown() to trip over at exit.
        _options.check_mode(mode)
        max_bytes = _options.one_of("max_bytes", max_bytes, "maxBytes", maxBytes, 0)
        backup_count = _options.one_of("backup_count", backup_count, "backupCount",
                                       backupCount, 0)
        encoding = "utf-8" if encoding is None else encoding
        errors = "backslashreplace" if errors is None else errors
        _options.check_queue(max_queue, overflow)
        _options.check_file(max_bytes=max_bytes, when=when, interval=interval, utc=utc,
                            backup_count=backup_count, compress=compress,
                            lock_timeout=lock_timeout, encoding=encoding, errors=errors,
                            at_time=atTime, delay=delay)
        _options.check_level(level)
        path = _options.check_path(filename)
        _make_directory(os.path.dirname(path))
        writer = file_writer(
            path, max_queue=max_queue, overflow=overflow, max_bytes=max_bytes, when=when,
            interval=interval, utc=utc, backup_count=backup_count, compress=compress,
            lock_timeout=lock_timeout, encoding=encoding, errors=errors, at_time=atTime,
            delay=delay)
        try:
            super().__init__(level)
        except BaseException:
            release_writer(writer)
            raise
        self.baseFilename = path
        self.mode = mode
        self.encoding = encoding
        self.errors = errors
        self.delay = delay
        self.maxBytes = max_bytes
        self.backupCount = backup_count
        self.when, self.interval, self.utc, self.atTime = when, interval, utc, atTime
        self._writer = writer

    # The stdlib's rotation hooks. aiolog renames under a lock shared by every process, with
    # link+unlink so that a crash at any step loses nothing; a callable from the user cannot
    # keep those promises. Refuse it where it is set, never ignore it.
    @property
    def namer(self) -> None:
        """Always None: backups are named ``app.log.1`` or ``app.log.<date>``."""
        return None

    @namer.setter
    def namer(self, value: object) -> None:
        if value is not None:
            raise _refused_hook("namer")

    @property
    def rotator(self) -> None:
        """Always None: aiolog renames under its lock, and compresses with ``compress=True``."""
        return None

    @rotator.setter
    def rotator(self, value: object) -> None:
        if value is not None:
            raise _refused_hook("rotator")

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for hook in _STDLIB_HOOKS:
            if hook in cls.__dict__:
                raise _refused_hook(hook)

    def doRollover(self) -> None:
        """Not provided: raises ``NotImplementedError`` saying what to do instead."""
        raise NotImplementedError(
            "AsyncFileHandler rotates on its writer thread, under a lock every process "
            "shares, when max_bytes or when says so; it cannot rotate on request. Use a "
            "smaller max_bytes or a when=, or external logrotate (with 'create')")

    def _release(self) -> None:
        release_writer(self._writer)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.baseFilename} ({logging.getLevelName(self.level)})>"


_STDLIB_HOOKS: Final = ("namer", "rotator", "rotation_filename", "rotate", "shouldRollover",
                        "doRollover")


def _refused_hook(name: str) -> TypeError:
    return TypeError(
        f"AsyncFileHandler does not call {name}: its rotation renames files under a lock "
        "shared by every process, so that a crash at any step loses no record. For gzip use "
        "compress=True; backups are named app.log.1 (size) or app.log.<date> (time)")


def _make_directory(directory: str) -> None:
    """Create missing parent directories, as loguru does: a quick start runs in an empty place."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise type(exc)(exc.errno, f"aiolog cannot create log directory {directory!r}: "
                        f"{exc.strerror}") from None


class AsyncStreamHandler(AsyncHandler):
    """Log to a text stream (``sys.stderr`` by default) whose writes happen off the loop."""

    def __init__(self, stream: TextIO | None = None, *, max_queue: int = DEFAULT_MAX_QUEUE,
                 overflow: Overflow = "block", level: int | str = logging.NOTSET) -> None:
        """Check the options and start the writer thread for ``stream``.

        Args:
            stream: any object with ``write()`` (and optionally ``flush()``); ``None`` means
                ``sys.stderr``.
            max_queue, overflow, level: as for ``AsyncFileHandler``.
        """
        _options.check_queue(max_queue, overflow)
        _options.check_level(level)
        stream = sys.stderr if stream is None else stream
        if not callable(getattr(stream, "write", None)):
            raise TypeError(f"stream must have a write() method, not {stream!r}")
        super().__init__(level)
        self.stream = stream
        self._writer = stream_writer(self.stream, max_queue=max_queue, overflow=overflow)

    def __repr__(self) -> str:
        name = getattr(self.stream, "name", repr(self.stream))
        return f"<{type(self).__name__} {name} ({logging.getLevelName(self.level)})>"
