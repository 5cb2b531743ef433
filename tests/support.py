"""Helpers shared by the service tests (fixtures live in `tests/conftest.py`; Kafka helpers, also
used by the benchmarks, in `testkit`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from shared.config import Settings


@asynccontextmanager
async def running(serve: Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]], settings: Settings
                  ) -> AsyncIterator[asyncio.Task[None]]:
    """A service's `serve()` in a task, stopped as SIGTERM would stop it, re-raising its failure."""
    stop = asyncio.Event()
    task: asyncio.Task[None] = asyncio.create_task(serve(settings, stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
