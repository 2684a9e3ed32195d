"""The journald handler: each record becomes one native-protocol entry, built on the caller.

The entry is built in ``emit()`` like any aiolog line (the snapshot of the record), and queued
as text with one character per byte (latin-1), so it travels the same queue and owner thread as
a file's lines; the sink (``aiolog.sinks._journal``) sends each as one datagram.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from collections.abc import Mapping
from typing import Any, Final

from . import _context, _options
from ._handler import DEFAULT_MAX_QUEUE, AsyncHandler
from ._queue import Overflow
from ._registry import sink_writer
from .sinks._journal import DEFAULT_SOCKET, JournalSink

_NAME_MAX: Final = 64  # journald refuses longer field names
_NOT_NAME: Final = re.compile(r"[^A-Z0-9_]")
_ERRORS: Final = "backslashreplace"  # a lone surrogate is shown escaped, never costs the record
_EXCEPTIONS: Final = logging.Formatter()  # renders a traceback when the formatter did not
_OWN_NAMES: Final = frozenset({"MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "LOGGER", "CODE_FILE",
                               "CODE_LINE", "CODE_FUNC", "EXCEPTION_TEXT"})


@functools.lru_cache(maxsize=4096)
def field_name(key: str) -> str:
    """``key`` as journald keeps it: ``[A-Z0-9_]``, at most 64, no leading digit or ``_``.

    journald silently discards a field whose name breaks these rules (python-systemd#69 lost
    every lower-case ``extra`` that way), and a leading ``_`` marks the fields only journald
    itself may set. Leading underscores are dropped; a name that would start with a digit (or
    be empty) gets ``X_`` in front.
    """
    name = _NOT_NAME.sub("_", key.upper()).lstrip("_")
    if not name or name[0].isdigit():
        name = "X_" + name
    return name[:_NAME_MAX]


def priority(levelno: object) -> int:
    """The syslog priority of a level: ``SysLogHandler``'s mapping, with levels in between
    going to the lower neighbour (a custom TRACE level of 5 is debug, 7)."""
    if not isinstance(levelno, (int, float)):  # a hand-made record: still sent, as info
        return 6
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def _field(name: str, value: Any) -> str:
    """One field of an entry, as latin-1 text: ``NAME=value\n``, or for a value holding a
    newline, the name, ``\n``, the value's length as a little-endian 64-bit integer, the value
    and ``\n``. The value's bytes are its UTF-8; ASCII text, the usual case, is them already."""
    if type(value) is not str:
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("latin-1")
        else:
            try:
                value = str(value)
            except Exception:
                value = f"<{type(value).__name__} object (str() failed)>"
    if not value.isascii():
        value = value.encode("utf-8", _ERRORS).decode("latin-1")
    if "\n" in value:
        return f"{name}\n{len(value).to_bytes(8, 'little').decode('latin-1')}{value}\n"
    return f"{name}={value}\n"


def entry(fields: list[tuple[str, Any]]) -> str:
    """The native-protocol entry of ``fields``, as latin-1 text (one character per byte)."""
    return "".join([_field(name, value) for name, value in fields])


class AsyncJournalHandler(AsyncHandler):
    """Log to journald over its native protocol, one entry per record, off the event loop.

    Each entry has ``MESSAGE`` (the formatted record: ``"%(message)s"`` and the traceback
    unless another formatter is set), ``PRIORITY``, ``SYSLOG_IDENTIFIER``, ``LOGGER``,
    ``CODE_FILE``, ``CODE_LINE``, ``CODE_FUNC``, ``EXCEPTION_TEXT`` when there is one, and every
    ``extra`` and bound context field under its journald name (see ``field_name``). A field
    named like one of aiolog's replaces it (``extra={"syslog_identifier": "worker"}``).

    Args:
        socket_path: journald's socket; a namespace's is ``/run/systemd/journal.NAME/socket``.
            Default ``/run/systemd/journal/socket``. Not opened until the first record: the
            constructor succeeds while journald is down, and records wait until it is up.
        identifier: ``SYSLOG_IDENTIFIER``; default the program's name (``sys.argv[0]``).
        max_queue, overflow: as for ``AsyncFileHandler``.
    """

    terminator = ""  # MESSAGE is the formatted record alone

    def __init__(self, *, socket_path: str | os.PathLike[str] | None = None,
                 identifier: str | None = None, max_queue: int = DEFAULT_MAX_QUEUE,
                 overflow: Overflow = "block", level: int | str = logging.NOTSET) -> None:
        _options.check_queue(max_queue, overflow)
        _options.check_level(level)
        path = DEFAULT_SOCKET if socket_path is None else _options.check_path(socket_path)
        if identifier is None:
            identifier = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "python"
        elif not isinstance(identifier, str) or not identifier:
            raise TypeError(f"identifier must be a non-empty string, not {identifier!r}")
        super().__init__(level)
        self.socket_path = path
        self.identifier = identifier
        self._writer = sink_writer(JournalSink(path), max_queue=max_queue, overflow=overflow)

    def line(self, record: logging.LogRecord) -> str:
        """The record's whole journal entry, as latin-1 text (one character per byte)."""
        message = super().line(record)  # formatted, or what could be shown of it: never lost
        user = [(field_name(key), value) for key, value in _extra(record).items()]
        exception = record.exc_text
        if not exception and record.exc_info:
            try:
                exception = _EXCEPTIONS.formatException(record.exc_info)
            except Exception:
                exception = None
        # The usual record: its own fields are ASCII without a newline, and no user field
        # takes one of their names. Then one f-string writes them (a third of the cost).
        own = (f"PRIORITY={priority(record.levelno)}\nSYSLOG_IDENTIFIER={self.identifier}\n"
               f"LOGGER={record.name}\nCODE_FILE={record.pathname}\nCODE_LINE={record.lineno}\n"
               f"CODE_FUNC={record.funcName}\n")
        if (own.isascii() and own.count("\n") == 6
                and (not user or _OWN_NAMES.isdisjoint([name for name, _ in user]))):
            text = _field("MESSAGE", message) + own
            if exception:
                text += _field("EXCEPTION_TEXT", exception)
            return text + entry(user) if user else text
        fields: list[tuple[str, Any]] = [
            ("MESSAGE", message),
            ("PRIORITY", priority(record.levelno)),
            ("SYSLOG_IDENTIFIER", self.identifier),
            ("LOGGER", record.name),
            ("CODE_FILE", record.pathname),
            ("CODE_LINE", record.lineno),
            ("CODE_FUNC", record.funcName),
        ]
        if exception:
            fields.append(("EXCEPTION_TEXT", exception))
        names = {name for name, _ in user}  # a user field replaces ours of the same name
        return entry([field for field in fields if field[0] not in names] + user)

    def stats(self) -> dict[str, int]:
        """As for every handler, plus ``memfds``: entries too large for one datagram."""
        stats = super().stats()
        stats["memfds"] = self._writer.sink.memfds  # type: ignore[attr-defined]
        return stats

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.socket_path} "
                f"({logging.getLevelName(self.level)})>")


def _extra(record: logging.LogRecord) -> Mapping[str, Any]:
    """The bound context and the record's ``extra`` fields (``extra`` wins a shared name)."""
    attributes = record.__dict__
    # A set difference runs in C; most records have no extra field at all.
    keys = attributes.keys() - _context.RECORD_ATTRIBUTES
    bound = _context.current()
    if not keys:
        return bound
    extra = {key: attributes[key] for key in attributes if key in keys}  # in the record's order
    return {**bound, **extra} if bound else extra


def check_journald(journald: object) -> str | None:
    """``configure(journald=...)``: None for off, else the socket path (``True``: the system's)."""
    if journald is False:
        return None
    if journald is True:
        return DEFAULT_SOCKET
    if isinstance(journald, (str, os.PathLike)):
        return _options.check_path(journald)
    raise TypeError(f"journald must be True, False or journald's socket path, not {journald!r}")
