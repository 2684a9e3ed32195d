"""The logging set-ups compared, each opened the way its documentation shows.

Every contender writes the same records in the same format (``FORMAT``, or loguru's spelling of
it) to one file, and is closed the way its documentation says to get every record on disk.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib.util
import logging
import logging.handlers
import queue
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOGURU_FORMAT = "{time:YYYY-MM-DD HH:mm:ss,SSS} {level} {extra[name]}: {message}"
ALL_KEPT = 100  # backups kept: more than any run makes, so retention deletes nothing counted


@dataclass
class Opened:
    """A contender ready to log: ``info(message, *args)`` and how to close it."""

    info: Callable[..., Any]
    close: Callable[[], Awaitable[None]]
    awaits: bool = False  # its log calls are coroutines the caller awaits
    style: str = "percent"  # how its messages take arguments: "percent", "brace" or "mapping"


# (path, max_bytes; 0: no size rotation, when=None: no time rotation, "S": every second)
Opener = Callable[..., Awaitable[Opened]]


@dataclass(frozen=True)
class Contender:
    name: str
    open: Opener
    loop: str = "asyncio"  # the event loop its scenarios run on
    needs: str | None = None  # module that must import, else the contender is skipped
    rotates: bool = True  # has size rotation
    timed: bool = True  # has time rotation
    shareable: bool = True  # the file may be a FIFO

    def available(self) -> bool:
        return self.needs is None or importlib.util.find_spec(self.needs) is not None


def _stdlib_logger(handler: logging.Handler, formats: bool = True) -> logging.Logger:
    if formats:
        handler.setFormatter(logging.Formatter(FORMAT))
    logger = logging.getLogger("bench")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _stdlib_file(path: str, max_bytes: int, when: str | None = None) -> logging.Handler:
    if when:
        return logging.handlers.TimedRotatingFileHandler(path, when=when, backupCount=ALL_KEPT)
    if max_bytes:
        return logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes,
                                                    backupCount=ALL_KEPT)
    return logging.FileHandler(path)


async def open_aiolog(path: str, max_bytes: int, when: str | None = None) -> Opened:
    import aiolog

    handler = aiolog.AsyncFileHandler(path, max_bytes=max_bytes, when=when,
                                      backup_count=ALL_KEPT)
    return Opened(_stdlib_logger(handler).info, aiolog.shutdown)


async def open_stdlib(path: str, max_bytes: int, when: str | None = None) -> Opened:
    handler = _stdlib_file(path, max_bytes, when)

    async def close() -> None:
        handler.close()

    return Opened(_stdlib_logger(handler).info, close)


async def open_queue_listener(path: str, max_bytes: int, when: str | None = None) -> Opened:
    target = _stdlib_file(path, max_bytes, when)
    target.setFormatter(logging.Formatter(FORMAT))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, target)
    listener.start()
    # The listener's handler formats; the QueueHandler only merges the message.
    logger = _stdlib_logger(logging.handlers.QueueHandler(records), formats=False)

    async def close() -> None:
        listener.stop()
        target.close()

    return Opened(logger.info, close)


async def open_concurrent_log_handler(path: str, max_bytes: int,
                                      when: str | None = None) -> Opened:
    from concurrent_log_handler import (ConcurrentRotatingFileHandler,
                                        ConcurrentTimedRotatingFileHandler)

    handler: logging.Handler
    if when:
        handler = ConcurrentTimedRotatingFileHandler(path, when=when, backupCount=ALL_KEPT)
    else:
        handler = ConcurrentRotatingFileHandler(path, maxBytes=max_bytes, backupCount=ALL_KEPT)

    async def close() -> None:
        handler.close()

    return Opened(_stdlib_logger(handler).info, close)


async def open_picologging(path: str, max_bytes: int, when: str | None = None) -> Opened:
    import picologging
    import picologging.handlers

    if when:
        handler = picologging.handlers.TimedRotatingFileHandler(path, when=when,
                                                                backupCount=ALL_KEPT)
    elif max_bytes:
        handler = picologging.handlers.RotatingFileHandler(path, maxBytes=max_bytes,
                                                           backupCount=ALL_KEPT)
    else:
        handler = picologging.FileHandler(path)
    handler.setFormatter(picologging.Formatter(FORMAT))
    logger = picologging.getLogger("bench")
    logger.handlers[:] = [handler]
    logger.setLevel(picologging.INFO)
    logger.propagate = False

    async def close() -> None:
        handler.close()

    return Opened(logger.info, close)


# loguru has no rotation on the clock's second boundaries: its time rotation is an interval
# since the file was opened, the nearest it offers.
LOGURU_EVERY = {"S": datetime.timedelta(seconds=1)}


async def open_loguru(path: str, max_bytes: int, when: str | None = None) -> Opened:
    from loguru import logger

    logger.remove()
    logger.add(path, format=LOGURU_FORMAT, enqueue=True, level="INFO",
               rotation=LOGURU_EVERY[when] if when else max_bytes or None)

    async def close() -> None:
        await logger.complete()
        logger.remove()

    return Opened(logger.bind(name="bench").info, close, style="brace")


async def open_aiologger(path: str, max_bytes: int, when: str | None = None) -> Opened:
    from aiologger import Logger
    from aiologger.formatters.base import Formatter
    from aiologger.handlers.files import (AsyncFileHandler, AsyncTimedRotatingFileHandler,
                                          RolloverInterval)
    from aiologger.levels import LogLevel

    handler = (AsyncTimedRotatingFileHandler(path, when=RolloverInterval(when),
                                             backup_count=ALL_KEPT)
               if when else AsyncFileHandler(path))
    handler.formatter = Formatter(FORMAT)
    logger = Logger(name="bench", level=LogLevel.INFO)
    logger.add_handler(handler)

    def info(message: str, a: object, b: object, c: object) -> Awaitable[None]:
        return logger.info(message, {"a": a, "b": b, "c": c})  # it takes mappings only

    return Opened(info, logger.shutdown, awaits=True, style="mapping")


async def open_aiologging(path: str, max_bytes: int, when: str | None = None) -> Opened:
    import aiologging
    from aiologging.handlers.file import AsyncFileHandler
    from aiologging.handlers.rotating import (AsyncRotatingFileHandler,
                                              AsyncTimedRotatingFileHandler)

    handler: Any
    if when:
        handler = AsyncTimedRotatingFileHandler(path, when=when, backup_count=ALL_KEPT)
    elif max_bytes:
        handler = AsyncRotatingFileHandler(path, max_bytes=max_bytes, backup_count=ALL_KEPT)
    else:
        handler = AsyncFileHandler(path)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger = aiologging.getLogger("bench")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    return Opened(logger.info, aiologging.shutdown, awaits=True)


CONTENDERS: tuple[Contender, ...] = (
    Contender("aiolog", open_aiolog),
    Contender("aiolog+uvloop", open_aiolog, loop="uvloop", needs="uvloop"),
    Contender("logging", open_stdlib),
    Contender("QueueHandler+Listener", open_queue_listener),
    Contender("concurrent-log-handler", open_concurrent_log_handler,
              needs="concurrent_log_handler", shareable=False),
    Contender("picologging", open_picologging, needs="picologging"),
    Contender("loguru enqueue", open_loguru, needs="loguru"),
    Contender("aiologger", open_aiologger, needs="aiologger", rotates=False),
    Contender("aiologging", open_aiologging, needs="aiologging"),
)
BY_NAME = {c.name: c for c in CONTENDERS}


def run_on_loop(contender: Contender, main: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``main()`` on the contender's event loop."""
    if contender.loop == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())
