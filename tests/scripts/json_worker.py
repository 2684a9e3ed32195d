"""A worker process for the JSON multi-process tests: log N numbered records through one library.

``mode`` picks who produces the records: ``aiolog`` (``configure(format="json")``), ``structlog``
(structlog loggers routed into an aiolog handler through ``ProcessorFormatter``) or ``loguru``
(``logger.add(aiolog.AsyncFileHandler(...))``). Every record carries its worker's tag and
sequence number, so the test can check each appears exactly once, in order.
"""

import asyncio
import json
import logging
import sys

import aiolog


async def main(cfg: dict) -> None:
    path, n, tag, mode = cfg["path"], cfg["n"], cfg["tag"], cfg["mode"]
    options = {"max_bytes": cfg["max_bytes"], "backup_count": 0}
    if mode == "aiolog":
        await aiolog.configure(path, format="json", **options)
        aiolog.bind(tag=tag)
        log = logging.getLogger("w")
        for i in range(n):
            log.info("record %d", i, extra={"seq": i})
            if i % 50 == 0:
                await asyncio.sleep(0)
    elif mode == "structlog":
        import structlog

        handler = aiolog.AsyncFileHandler(path, **options)
        handler.setFormatter(structlog.stdlib.ProcessorFormatter(
            processor=structlog.processors.JSONRenderer()))
        await aiolog.configure(handlers=[handler])
        structlog.configure(
            processors=[structlog.contextvars.merge_contextvars, structlog.stdlib.add_log_level,
                        structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger, cache_logger_on_first_use=True)
        structlog.contextvars.bind_contextvars(tag=tag)
        slog = structlog.get_logger("w")
        for i in range(n):
            slog.info("record", seq=i)
            if i % 50 == 0:
                await asyncio.sleep(0)
    elif mode == "loguru":
        from loguru import logger

        handler = aiolog.AsyncFileHandler(path, **options)
        handler.setFormatter(aiolog.JsonFormatter())
        logger.remove()
        logger.add(handler, format="{message}")
        bound = logger.bind(tag=tag)
        for i in range(n):
            bound.bind(seq=i).info("record {}", i)
            if i % 50 == 0:
                await asyncio.sleep(0)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    await aiolog.shutdown()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
