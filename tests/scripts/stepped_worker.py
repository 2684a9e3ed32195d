"""A worker the test steps through: configure when told, then log one record per line read.

Prints ``ready`` once started, and waits for a line of stdin; then prints ``opened <time>`` once
``configure()`` has opened the file, and for each further line of stdin logs ``<tag> <i>``,
waits for ``flush()`` and prints ``logged``; at the end of stdin it shuts down. The test decides
when each process opens and writes, whatever the scheduler does.
"""

import asyncio
import json
import logging
import sys
import time

import aiolog


async def main(cfg: dict) -> None:
    print("ready", flush=True)
    if not await asyncio.to_thread(sys.stdin.readline):
        return
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
