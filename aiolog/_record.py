"""The lean record path: a ``LogRecord`` factory that builds the stdlib's record, cheaper.

``logging.setLogRecordFactory`` is the documented way to change how records are made. This
factory makes a plain ``logging.LogRecord`` holding exactly what ``LogRecord.__init__`` would
have put there, attribute by attribute and in the same order (``tests/test_record.py``
compares them over threads, tasks, forked children, ``stacklevel=``, ``exc_info``, ``extra=``
and pickling), and the Logger spends a fifth less of each ``logger.info()`` getting there:
the file name and module of a source path are worked out once per path, not per record (they
were 40 % of ``LogRecord.__init__``), and a lone argument's type is checked against the
``Mapping`` ABC only where it could be one.

Every attribute is still computed when the record is made, on the thread that logged, even
the names nobody may read: a record's ``__dict__`` is what formatters (``fmt % __dict__``),
``SocketHandler`` (``dict(record.__dict__)``) and JSON formatters read directly, and a value
missing from it until someone asks for it would be missing for them.
"""

from __future__ import annotations

import collections.abc
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, Literal

_LogRecord: Final = logging.LogRecord
_Mapping: Final = collections.abc.Mapping
_modules: Final = sys.modules
_new = object.__new__
_level_names: Final = logging._levelToName
# threading.current_thread() is _active[get_ident()], with a fallback for a foreign thread.
_threads: Final = threading._active  # type: ignore[attr-defined]
_get_ident: Final = threading.get_ident
_getpid: Final = os.getpid
# Types that are never mappings: the stdlib's isinstance(args[0], Mapping) is an ABC check that
# costs more than the rest of the args handling; for these it is known to be False.
_NOT_MAPPINGS: Final = frozenset({str, int, float, bool, bytes, tuple, list, type(None)})
# Python 3.13+ (and any later 3.12 that took the change) counts time in nanoseconds.
_NANOSECONDS: Final = isinstance(logging._startTime, int)  # type: ignore[attr-defined]
_START: Final = logging._startTime  # type: ignore[attr-defined]
_TASKS: Final = sys.version_info >= (3, 12)
_MAX_PATHS: Final = 4096

# source path -> (filename, module), as LogRecord.__init__ derives them.
_names: dict[str, tuple[str, str]] = {}


def _split(pathname: Any) -> tuple[Any, Any]:
    try:
        filename = os.path.basename(pathname)
        module = os.path.splitext(filename)[0]
    except (TypeError, ValueError, AttributeError):
        filename, module = pathname, "Unknown module"
    if type(pathname) is str:
        if len(_names) >= _MAX_PATHS:  # generated or odd paths: stay bounded
            _names.clear()
        _names[pathname] = (filename, module)
    return filename, module


def lean_record(name: str, level: int, pathname: str, lineno: int, msg: object, args: Any,
                exc_info: Any, func: str | None = None, sinfo: str | None = None,
                **kwargs: Any) -> logging.LogRecord:
    """A ``logging.LogRecord`` as ``LogRecord(...)`` makes it, with the same signature.

    The statements follow ``LogRecord.__init__`` of the running Python line by line (the
    ``logThreads``/``logProcesses``/``logMultiprocessing``/``logAsyncioTasks`` knobs are read
    on every call, as it reads them); only where the result is known does it skip the work.
    """
    ct: float = time.time_ns() if _NANOSECONDS else time.time()
    record = _new(_LogRecord)
    record.name = name
    record.msg = msg
    if (args and len(args) == 1 and type(args[0]) not in _NOT_MAPPINGS
            and isinstance(args[0], _Mapping) and args[0]):
        args = args[0]
    record.args = args
    # logging.getLevelName(level), its first lookup inline
    record.levelname = _level_names.get(level) or logging.getLevelName(level)
    record.levelno = level
    record.pathname = pathname
    try:
        record.filename, record.module = _names[pathname]
    except (KeyError, TypeError):  # TypeError: an unhashable path (only makeLogRecord's own)
        record.filename, record.module = _split(pathname)
    record.exc_info = exc_info
    record.exc_text = None
    record.stack_info = sinfo
    record.lineno = lineno
    record.funcName = func  # type: ignore[assignment]  # None, as LogRecord stores it
    if _NANOSECONDS:  # as LogRecord.__init__ does since Python 3.13
        record.created = created = ct / 1e9
        msecs = (ct % 1_000_000_000) // 1_000_000 + 0.0
        if msecs == 999.0 and int(created) != ct // 1_000_000_000:
            msecs = 0.0
        record.msecs = msecs
        record.relativeCreated = (ct - _START) / 1e6
    else:
        record.created = ct
        record.msecs = int((ct - int(ct)) * 1000) + 0.0
        record.relativeCreated = (ct - _START) * 1000
    if logging.logThreads:
        record.thread = thread = _get_ident()
        try:
            record.threadName = _threads[thread].name
        except KeyError:  # a thread threading did not start: current_thread() registers it
            record.threadName = threading.current_thread().name
    else:
        record.thread = None
        record.threadName = None
    if not logging.logMultiprocessing:
        record.processName = None
    else:
        record.processName = "MainProcess"
        mp = _modules.get("multiprocessing")
        if mp is not None:
            try:
                record.processName = mp.current_process().name
            except Exception:
                pass
    record.process = _getpid() if logging.logProcesses else None
    if _TASKS:
        record.taskName = None
        if logging.logAsyncioTasks:  # type: ignore[attr-defined]
            asyncio = _modules.get("asyncio")
            if asyncio:
                try:
                    record.taskName = asyncio.current_task().get_name()
                except Exception:
                    pass
    return record


def _known() -> bool:
    """Whether this Python's ``LogRecord.__init__`` sets exactly the attributes we set, as we do.

    A Python whose records gained or reordered an attribute keeps the stdlib's factory, and so
    does one from before gh-89047 (the first 3.10 releases): its ``msecs`` keeps the fraction
    of a millisecond, where ours, like every later Python's, is a whole number.
    """
    args: tuple[Any, ...] = ("n", logging.INFO, "/p/m.py", 1, "m", None, None, "f", None)
    stdlib = _LogRecord(*args)
    return (list(stdlib.__dict__) == list(lean_record(*args).__dict__)
            and stdlib.msecs == int(stdlib.msecs))


KNOWN: Final = _known()
# The factory that was in place when install() replaced it, to put back on uninstall().
_replaced: list[Callable[..., logging.LogRecord]] = []


def install() -> bool:
    """Make records with ``lean_record`` if the stdlib's own factory is in place; True if so.

    A factory someone installed before (OpenTelemetry's logging instrumentation, a cookbook
    recipe) stays: ours could only chain to it, which would make every record cost more. A
    factory installed after ours chains to ours, as the cookbook shows, and keeps the gain.
    """
    current = logging.getLogRecordFactory()
    if current is lean_record:
        return True
    if current is not _LogRecord or not KNOWN:
        return False
    _replaced[:] = [current]
    logging.setLogRecordFactory(lean_record)
    return True


def uninstall() -> None:
    """Put the stdlib's factory back, unless someone installed another over ours."""
    if logging.getLogRecordFactory() is lean_record and _replaced:
        logging.setLogRecordFactory(_replaced.pop())


Records = Literal["lean", "stdlib", "no_caller"]
RECORDS: Final = ("lean", "stdlib", "no_caller")
# What findCaller fills in; with logging._srcfile = None they are "(unknown file)", 0 and
# "(unknown function)" (filename and module follow pathname), and stack_info=True gives none.
CALLER_FIELDS: Final = ("pathname", "filename", "module", "lineno", "funcName")
_FIELD: Final = re.compile(r"%\((\w+)\)|\{(\w+)|\$\{?(\w+)")
# logging._srcfile as it was before records="no_caller" set it to None, to put back.
_srcfile: list[Any] = []


def check(records: object, formatters: Iterable[logging.Formatter | None]) -> None:
    """Refuse a ``records`` value configure() cannot apply, before anything changed.

    ``"no_caller"`` is refused where one of ``formatters`` shows a field it leaves unknown:
    a log line saying ``(unknown file):0`` is worse than a slower one.
    """
    if records not in RECORDS:
        raise ValueError(f"records must be one of {', '.join(map(repr, RECORDS))}, "
                         f"not {records!r}")
    if records != "no_caller":
        return
    for formatter in formatters:
        shown = sorted(set(CALLER_FIELDS) & set(_fields_of(formatter)))
        if shown:
            raise ValueError(f"records='no_caller' leaves {', '.join(shown)} unknown, and the "
                             f"format shows {'them' if len(shown) > 1 else 'it'}: use "
                             "records='lean' (the default), which finds the caller")


def _fields_of(formatter: logging.Formatter | None) -> list[str]:
    fields = getattr(formatter, "fields", None)  # JsonFormatter's chosen fields
    if isinstance(fields, tuple):
        return list(fields)
    fmt = getattr(getattr(formatter, "_style", None), "_fmt", None)
    if not isinstance(fmt, str):
        return []
    return [next(name for name in match if name) for match in _FIELD.findall(fmt)]


def apply(records: Records) -> None:
    """Make records as ``configure(records=...)`` asks; call ``check`` first."""
    if records == "stdlib":
        uninstall()
    else:
        install()
    if records == "no_caller":
        if logging._srcfile is not None:
            _srcfile[:] = [logging._srcfile]
            logging._srcfile = None
    elif _srcfile and logging._srcfile is None:
        logging._srcfile = _srcfile.pop()
