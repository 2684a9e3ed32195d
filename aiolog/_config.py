"""configure / flush / shutdown: the one owner of aiolog's global state."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Generator, Iterable, Mapping
from typing import Any

from . import _options, _record
from ._handler import DEFAULT_MAX_QUEUE, AsyncFileHandler, AsyncHandler, AsyncStreamHandler
from ._format import fast_equivalent
from ._journald import AsyncJournalHandler, check_journald
from ._json import JsonFormatter
from ._options import When
from ._owner import report as _report
from ._queue import Overflow
from ._registry import live_writers
from ._syslog_handler import parse_syslog_url, syslog_handler

DEFAULT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The handlers configure() put on the root logger, for shutdown() to close.
_installed: list[logging.Handler] = []
# configure() from several threads (or tasks) at once: one at a time, the last one wins. Held
# only by synchronous code, never across an await, so a loop can never wait for itself.
_configure_lock = threading.RLock()
# Threads closing the handlers earlier calls replaced.
_closers: list[threading.Thread] = []


def configure(
    filename: str | os.PathLike[str] | None = None,
    *,
    level: int | str = "INFO",
    format: str | None = None,
    datefmt: str | None = None,
    style: str = "%",
    defaults: Mapping[str, object] | None = None,
    max_bytes: int = 0,
    when: When | None = None,
    interval: int = 1,
    utc: bool = False,
    backup_count: int = 0,
    compress: bool = False,
    lock_timeout: float = 10.0,
    max_queue: int = DEFAULT_MAX_QUEUE,
    overflow: Overflow = "block",
    handlers: Iterable[logging.Handler] | None = None,
    formatter: logging.Formatter | None = None,
    capture: Iterable[str] = (),
    journald: bool | str | os.PathLike[str] = False,
    syslog: str | None = None,
    records: _record.Records = "lean",
) -> Configuring:
    """Install aiolog on the root logger, replacing every handler it had.

    As ``logging.basicConfig(force=True)``: every handler on the root logger (aiolog's or
    not, from an earlier call, ``dictConfig`` or ``addHandler``) is removed and closed.
    Records from every ``logging.getLogger()`` then flow through aiolog. Every option is
    checked (values and types) before anything is built, so a bad one raises here, changes
    nothing, and leaves nothing open. The swap itself loses no record: the old handlers leave
    the root logger in the same step as the new ones join it, then write out what they hold.

    The work is done when this is called, also without ``await`` and without a running loop;
    ``await`` the result to wait until the replaced handlers are closed and to get the new
    ones. Safe from any thread: calls run one at a time and the last one wins.

    Args:
        filename: the log file (missing directories are created); ``None`` logs to stderr
            without blocking.
        level: the root logger's level.
        format, datefmt, style, defaults: as ``logging.Formatter`` takes them (``defaults``
            declares fields of your own, e.g. bound context fields, with the value shown when
            nothing provides them); ``format="json"`` writes JSON lines
            (``JsonFormatter()``, with ``datefmt`` if given).
        max_bytes, when, interval, utc, backup_count, compress, lock_timeout, max_queue,
            overflow: as ``AsyncFileHandler`` takes them.
        handlers: install these handlers instead of building one from ``filename``.
        formatter: use this formatter (a configured ``JsonFormatter``, say) instead of one
            built from ``format``.
        capture: names of loggers that have handlers of their own and do not propagate
            (``"uvicorn.access"`` under gunicorn): their handlers are removed and they
            propagate to the root logger, so their records reach aiolog too.
        journald: also log to journald (``AsyncJournalHandler``, its own ``"%(message)s"``
            format): ``True`` for the system journal, or the socket path of a namespace.
        syslog: also send every record to this collector, e.g. ``"relp://loghost:2514"``
            (schemes udp, tcp, tls, relp, unix), beside the file or stream handler.
        records: ``"lean"`` makes the stdlib's records for less with aiolog's factory;
            ``"stdlib"`` puts the stdlib's factory back; ``"no_caller"`` also stops finding
            the caller (``logging._srcfile = None``): no file, line or function, no
            ``stack_info``. See "The lean record path" in the README.

    Returns:
        An awaitable giving the handlers installed.
    """
    # syslog takes configure()'s formatter only when one was chosen for it (see "Shipping logs").
    syslog_formatter_given = formatter is not None or format == "json"
    with _configure_lock:
        # 1. Check everything; nothing is built or changed until all of it passed.
        _options.check_level(level)
        if formatter is not None:
            if not isinstance(formatter, logging.Formatter):
                raise TypeError(f"formatter must be a logging.Formatter, not {formatter!r}")
            if format is not None or defaults is not None:
                raise TypeError("give configure() format= (and defaults=) or formatter=, not "
                                "both: the formatter has its own format")
        elif format == "json":
            if defaults is not None:
                raise TypeError("defaults= is for text formats; format='json' writes every "
                                "bound field without declaring it")
            formatter = JsonFormatter(datefmt=datefmt)
        else:
            formatter = fast_equivalent(_options.check_formatter(
                DEFAULT_FORMAT if format is None else format, datefmt, style, defaults))
        if isinstance(capture, str):
            raise TypeError(f"capture must be a list of logger names, not the string "
                            f"{capture!r}: write capture=[{capture!r}]")
        captured = list(capture)
        if not all(isinstance(name, str) and name for name in captured):
            raise TypeError(f"capture must be logger names, not {captured!r}")
        path: str | None = None
        file_options: dict[str, object] = {}
        if handlers is not None:
            if filename is not None:
                raise ValueError("give configure() a filename or handlers=[...], not both")
            given = list(handlers)
            if not all(isinstance(h, logging.Handler) for h in given):
                raise TypeError(f"handlers must be logging.Handler instances, not {given!r}")
        else:
            _options.check_queue(max_queue, overflow)
            if filename is not None:
                path = _options.check_path(filename)
                file_options = dict(
                    max_bytes=max_bytes, when=when, interval=interval, utc=utc,
                    backup_count=backup_count, compress=compress, lock_timeout=lock_timeout,
                    encoding="utf-8", errors="backslashreplace")
                _options.check_file(**file_options)
        journal_socket = check_journald(journald)
        _record.check(records, [formatter, *(h.formatter for h in given)]
                      if handlers is not None else [formatter])
        syslog_options = parse_syslog_url(syslog) if syslog is not None else None
        if syslog_options is not None:
            _options.check_queue(max_queue, overflow)

        # 2. Handlers an earlier call replaced are still closing: let them finish, so that a
        # file they hold with other options is free again.
        for earlier in _closers:
            earlier.join()
        _closers.clear()
        root = logging.getLogger()

        # 3. Same file as before with other options: one writer per file, so the old one must
        # close first, here (its queue is written out on this thread). The old handlers stay
        # attached meanwhile and, once closing, write each record synchronously: a record
        # logged during the swap still reaches the file, in order.
        if path is not None:
            # The writer records atTime too (configure() has none): compare like with like.
            wanted = {**file_options, "at_time": None}
            for same in _reopened(path, wanted, root.handlers[:]):
                same.close()

        # 4. Build (a file that cannot be opened raises here, with the old handlers in place).
        if handlers is not None:
            new = given
        elif path is None:
            new = [AsyncStreamHandler(sys.stderr, max_queue=max_queue, overflow=overflow)]
        else:
            new = [AsyncFileHandler(path, max_queue=max_queue, overflow=overflow,
                                    **file_options)]  # type: ignore[arg-type]
        for handler in new:
            if handlers is None or handler.formatter is None:
                handler.setFormatter(formatter)
        if journal_socket is not None:
            new.append(AsyncJournalHandler(socket_path=journal_socket, max_queue=max_queue,
                                           overflow=overflow))
        if syslog_options is not None:
            new.append(syslog_handler(syslog_options, max_queue=max_queue, overflow=overflow,
                                      formatter=formatter if syslog_formatter_given else None))

        # 5. Swap in one step: every record goes to the old handlers or the new, never to none
        # and never to both (logging reads root.handlers without a lock; assigning the list is
        # one step for a reader). The old ones are what the root logger holds now, whoever
        # put them there (another thread's configure() included).
        with logging._lock:  # type: ignore[attr-defined]  # what addHandler() takes
            old = [h for h in root.handlers if h not in new]
            root.handlers = list(new)
            root.setLevel(level.upper() if isinstance(level, str) else level)
            for name in captured:
                captured_logger = logging.getLogger(name)
                captured_logger.handlers = []
                captured_logger.propagate = True
        _installed[:] = new
        _record.apply(records)

        # 6. The old handlers write out what they hold, then close, on a thread of their own:
        # the caller never waits for it, and forgetting ``await`` still closes them.
        # A handler that another logger still uses (a dictConfig handler on "gunicorn.error"
        # as well as on the root) only leaves the root logger: closing it would turn its
        # other logger's writes synchronous.
        old = [h for h in old if not _used_elsewhere(h)]
        closer: threading.Thread | None = None
        if old:
            closer = threading.Thread(target=_close_all, args=(old,), name="aiolog-configure")
            closer.start()
            _closers.append(closer)
        return Configuring(new, closer)


class Configuring(Coroutine[Any, Any, "list[logging.Handler]"]):
    """What ``configure()`` returns: awaiting it waits for the replaced handlers to close.

    A coroutine (``asyncio.run(aiolog.configure(...))`` works too) whose work was already done
    when ``configure()`` returned; the coroutine behind it is made only when it is run, so
    one never run raises no "never awaited" warning.
    """

    def __init__(self, handlers: list[logging.Handler], closer: threading.Thread | None) -> None:
        self.handlers = handlers
        self._closer = closer
        self._coro: Coroutine[Any, Any, list[logging.Handler]] | None = None

    def _run(self) -> Coroutine[Any, Any, list[logging.Handler]]:
        if self._coro is None:
            self._coro = self._wait()
        return self._coro

    def send(self, value: Any) -> Any:
        return self._run().send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if val is None and tb is None:  # the one-argument form: the others are deprecated
            return self._run().throw(typ)
        return self._run().throw(typ, val, tb)

    def close(self) -> None:
        if self._coro is not None:
            self._coro.close()

    def __await__(self) -> Generator[Any, None, list[logging.Handler]]:
        return self._run().__await__()

    async def _wait(self) -> list[logging.Handler]:
        closer = self._closer
        while closer is not None and closer.is_alive():
            await asyncio.sleep(0.005)  # a thread writing out what it held; never the loop
        return self.handlers


def _used_elsewhere(handler: logging.Handler) -> bool:
    loggers = list(logging.Logger.manager.loggerDict.values())  # a copy: threads add loggers
    return any(isinstance(logger, logging.Logger) and handler in logger.handlers
               for logger in loggers)


def _close_all(handlers: list[logging.Handler]) -> None:
    for handler in handlers:
        try:
            handler.close()
        except Exception as exc:
            _report(f"aiolog: closing a replaced handler {handler!r} failed", exc)


def _reopened(path: str, options: dict[str, object],
              old: list[logging.Handler]) -> list[AsyncFileHandler]:
    """The handlers of ours to close before ``path`` can be opened again with ``options``."""
    key = os.path.realpath(path)
    same = [h for h in old if isinstance(h, AsyncFileHandler)
            and os.path.realpath(h.baseFilename) == key and not h._released]
    if not same or same[0]._writer.options == options:
        return []  # nothing of ours on it, or the same options: the new handler shares it
    others = same[0]._writer.users - len(same)
    if others > 0:
        # Someone else's handler (on a logger other than the root) holds the file with the
        # old options: refuse now, before anything changed, rather than close a writer that
        # is not ours to close.
        raise ValueError(f"{path!r} is already open in this process with other rotation "
                         f"options by {others} handler(s) on loggers other than the root; "
                         "close them first or give the same options")
    return same


async def _close(handler: logging.Handler) -> None:
    if isinstance(handler, AsyncHandler):
        await handler.aclose()
    else:
        await asyncio.get_running_loop().run_in_executor(None, handler.close)


async def flush() -> None:
    """Return once every record logged so far (through any aiolog handler) is written."""
    for writer in live_writers():
        await writer.flush()


def flush_sync() -> None:
    """Write every queued record before returning, for code that cannot await.

    For example just before ``os.execv``, in a signal handler, or in synchronous shutdown code.
    It blocks the calling thread until the writes are done.
    """
    for writer in live_writers():
        writer.flush_sync()


async def shutdown() -> None:
    """Drain every queue, close files and release locks.

    The handlers ``configure()`` installed stay on the root logger, closed: records logged
    afterwards (a server's last lines after its lifespan ends) are written synchronously, by
    any handler still attached. The next ``configure()`` replaces them.
    """
    for handler in _installed:
        await _close(handler)
    for writer in live_writers():
        await writer.aclose()


def install_signal_handlers(signals: Iterable[int] = (signal.SIGTERM,)) -> None:
    """On these signals write everything queued, then do what the replaced handler did.

    A container stop sends SIGTERM. The handler found when this is called still runs: a
    server's graceful shutdown (uvicorn, gunicorn's uvicorn worker) still happens; with no
    handler, the process still dies of the signal. From the signal on, every aiolog writer is
    closed and each record is written as it is logged (synchronously): a process on its way
    out may be killed by the signal at any moment (uvicorn re-raises it with the default
    action once its shutdown is done) and then no ``atexit`` drain runs.
    Call it from inside the running loop, after the server installed its own handlers
    (in an ASGI lifespan startup, for instance).
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "aiolog.install_signal_handlers() needs the running event loop: call it from "
            "async code (after 'await aiolog.configure(...)', or in an ASGI lifespan "
            "startup), not at import time or before asyncio.run()") from None
    for signum in signals:
        previous = _previous_handler(loop, signum)
        loop.add_signal_handler(signum, _on_signal, previous)


def _previous_handler(loop: asyncio.AbstractEventLoop, signum: int) -> Callable[[], object]:
    """What ``signum`` did before us, as a callable run after our flush."""
    registered = getattr(loop, "_signal_handlers", None)  # asyncio's add_signal_handler
    if isinstance(registered, dict) and signum in registered:
        handle: asyncio.Handle = registered[signum]
        return handle._run  # runs it as the loop would, reporting what it raises
    current = signal.getsignal(signum)
    if getattr(current, "__self__", None) is loop:
        # uvloop keeps the callbacks of its add_signal_handler where we cannot reach them, and
        # ours would replace that callback: refuse rather than silently cut it off.
        raise RuntimeError(
            f"signal {signum} already has a handler added with loop.add_signal_handler(); "
            "aiolog cannot chain to it there: call aiolog.flush_sync() in that handler instead")
    if current == signal.SIG_IGN:
        return lambda: None
    if callable(current):
        return lambda: current(signum, None)  # a server's handler, e.g. uvicorn's handle_exit
    return lambda: _die_of(signum)  # SIG_DFL, or a handler set outside Python


def _on_signal(previous: Callable[[], object]) -> None:
    # Runs as a loop callback (add_signal_handler), not inside the signal: taking aiolog's
    # locks here cannot deadlock with the code the signal interrupted.
    for writer in live_writers():
        try:
            writer.close()  # writes what is queued; the handlers stay attached, now synchronous
        except Exception as exc:
            _report(f"aiolog: closing {writer.name} on a signal failed", exc)
    previous()


def _die_of(signum: int) -> None:
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
