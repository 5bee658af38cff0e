"""Process-tree kills run on a pool of their own: with every database thread
busy, a Claude Code process (and what it started) still ends."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from core_service.agent import process_tree


async def test_a_kill_does_not_wait_for_a_busy_database_pool() -> None:
    loop = asyncio.get_running_loop()
    busy = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(busy)
    release = threading.Event()
    blocked = loop.run_in_executor(None, release.wait)  # the one database thread
    child = await asyncio.create_subprocess_exec("sleep", "60")
    try:
        proc = process_tree.identify(child.pid)
        frozen = await asyncio.wait_for(process_tree.afreeze(proc, True), 5)
        left = await asyncio.wait_for(process_tree.akill(frozen, proc, None), 10)
        assert left == [] and await asyncio.wait_for(child.wait(), 5) == -9
    finally:
        release.set()
        await blocked
        if child.returncode is None:
            child.kill()
            await child.wait()
