"""configure / flush / shutdown: the one owner of aiolog's global state."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Iterable


from ._handler import DEFAULT_MAX_QUEUE, AsyncFileHandler, AsyncHandler, AsyncStreamHandler
from ._json import JsonFormatter
from ._queue import Overflow
from ._registry import live_writers

DEFAULT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The handlers configure() put on the root logger, so the next call replaces exactly those.
_installed: list[logging.Handler] = []


async def configure(
    filename: str | os.PathLike[str] | None = None,
    *,
    level: int | str = "INFO",
    format: str = DEFAULT_FORMAT,
    datefmt: str | None = None,
    style: str = "%",
    max_bytes: int = 0,
    when: str | None = None,
    interval: int = 1,
    utc: bool = False,
    backup_count: int = 0,
    compress: bool = False,
    lock_timeout: float = 10.0,
    max_queue: int = DEFAULT_MAX_QUEUE,
    overflow: Overflow = "block",
    handlers: Iterable[logging.Handler] | None = None,
    formatter: logging.Formatter | None = None,
) -> list[logging.Handler]:
    """Install aiolog on the root logger, replacing what an earlier call installed.

    Records from every ``logging.getLogger()`` then flow through it. Errors in the options
    (a missing directory, an unknown ``when``) raise here, not at the first write.

    Args:
        filename: the log file; ``None`` logs to stderr without blocking.
        level: the root logger's level.
        format, datefmt, style: as ``logging.Formatter`` takes them; ``format="json"``
            writes JSON lines (``JsonFormatter()``, with ``datefmt`` if given).
        max_bytes, when, interval, utc, backup_count, compress, lock_timeout, max_queue,
            overflow: as ``AsyncFileHandler`` takes them.
        handlers: install these handlers instead of building one from ``filename``.
        formatter: use this formatter (a configured ``JsonFormatter``, say) instead of one
            built from ``format``.

    Returns:
        The handlers installed.
    """
    if formatter is not None:
        if not isinstance(formatter, logging.Formatter):
            raise TypeError(f"formatter must be a logging.Formatter, not {formatter!r}")
    elif format == "json":
        formatter = JsonFormatter(datefmt=datefmt)
    else:
        formatter = logging.Formatter(format, datefmt, style)  # type: ignore[arg-type]
    if handlers is not None:
        new = list(handlers)
        if not all(isinstance(h, logging.Handler) for h in new):
            raise TypeError(f"handlers must be logging.Handler instances, not {new!r}")
    elif filename is None:
        new = [AsyncStreamHandler(sys.stderr, max_queue=max_queue, overflow=overflow)]
    else:
        new = [AsyncFileHandler(
            filename, max_bytes=max_bytes, when=when, interval=interval, utc=utc,
            backup_count=backup_count, compress=compress, lock_timeout=lock_timeout,
            max_queue=max_queue, overflow=overflow)]
    root = logging.getLogger()
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for handler in new:
        if handlers is None or handler.formatter is None:
            handler.setFormatter(formatter)
        root.addHandler(handler)
    await _remove_installed(keep=new)
    _installed.extend(new)
    return new


async def _remove_installed(keep: list[logging.Handler] = ()) -> None:  # type: ignore[assignment]
    root = logging.getLogger()
    old = [h for h in _installed if h not in keep]
    _installed.clear()
    for handler in old:
        root.removeHandler(handler)
        await _close(handler)


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

    Records logged afterwards through a handler still attached are written synchronously.
    """
    await _remove_installed()
    for writer in live_writers():
        await writer.aclose()


def install_signal_handlers(signals: Iterable[int] = (signal.SIGTERM,)) -> None:
    """On these signals, shut aiolog down cleanly, then stop as the signal would have.

    A container stop sends SIGTERM; without this, records still queued would be lost when the
    process dies. Call it from inside the running loop.
    """
    loop = asyncio.get_running_loop()
    for signum in signals:
        loop.add_signal_handler(signum, _on_signal, signum)


def _on_signal(signum: int) -> None:
    flush_sync()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


