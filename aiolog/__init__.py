"""aiolog: asyncio-native logging that never stalls the loop, safe across processes."""

from ._config import configure, flush, flush_sync, install_signal_handlers, shutdown
from ._format import FastFormatter
from ._handler import AsyncFileHandler, AsyncHandler, AsyncStreamHandler

__all__ = [
    "AsyncFileHandler",
    "AsyncHandler",
    "AsyncStreamHandler",
    "FastFormatter",
    "configure",
    "flush",
    "flush_sync",
    "install_signal_handlers",
    "shutdown",
]
