"""aiolog: asyncio-native logging that never stalls the loop, safe across processes."""

from ._config import configure, flush, flush_sync, install_signal_handlers, shutdown
from ._context import ContextFilter, bind, clear_context, context, get_context, unbind
from ._format import FastFormatter
from ._handler import AsyncFileHandler, AsyncHandler, AsyncStreamHandler
from ._journald import AsyncJournalHandler
from ._json import JsonFormatter
from ._syslog_handler import AsyncSyslogHandler
from ._version import version as _version

__version__ = _version()

__all__ = [
    "AsyncFileHandler",
    "AsyncHandler",
    "AsyncJournalHandler",
    "AsyncStreamHandler",
    "AsyncSyslogHandler",
    "ContextFilter",
    "FastFormatter",
    "JsonFormatter",
    "bind",
    "clear_context",
    "configure",
    "context",
    "flush",
    "flush_sync",
    "get_context",
    "install_signal_handlers",
    "shutdown",
    "unbind",
]
