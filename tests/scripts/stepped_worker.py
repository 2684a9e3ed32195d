"""A worker the test steps through: configure, then log one numbered record per line read.

Prints ``opened <time>`` once ``configure()`` has opened the file, then for each line of stdin
logs ``<tag> <i>``, waits for ``flush()`` and prints ``logged``; at the end of stdin it shuts
down. The test decides when each process opens and writes, whatever the scheduler does.
"""

import asyncio
import json
import logging
import sys
import time

import aiolog


async def main(cfg: dict) -> None:
    await aiolog.configure(cfg["path"], format="%(created).6f %(message)s", **cfg["options"])
    print(f"opened {time.time():.6f}", flush=True)
    log = logging.getLogger("w")
    i = 0
    while await asyncio.to_thread(sys.stdin.readline):
        log.info("%s %d", cfg["tag"], i)
        i += 1
        await aiolog.flush()
        print("logged", flush=True)
    await aiolog.shutdown()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
