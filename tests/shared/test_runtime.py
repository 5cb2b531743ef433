"""`shared.messaging.runtime`: a service's stop says what it waits for."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from shared.messaging.runtime import cancel_and_wait


async def test_a_task_that_outlives_its_cancellation_is_reported_with_where_it_waits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.3)  # cleanup that takes its time (a close handshake, a flush)
            raise

    async def prompt() -> None:
        await asyncio.sleep(3600)

    tasks = [asyncio.create_task(stubborn(), name="stubborn"), asyncio.create_task(prompt(), name="prompt")]
    await asyncio.sleep(0)
    with caplog.at_level("WARNING", logger="shared.messaging.runtime"):
        await cancel_and_wait(tasks, report_after=0.1)
    assert all(t.done() for t in tasks)
    reports = [r.getMessage() for r in caplog.records]
    assert len(reports) == 1
    assert "task stubborn still running" in reports[0] and "in stubborn" in reports[0]  # its stack, by function


async def test_a_task_that_fails_while_stopping_still_raises() -> None:
    async def broken() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        raise RuntimeError("could not close")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="could not close"):
        await cancel_and_wait([task], report_after=0.1)
