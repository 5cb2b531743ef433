"""`shared.messaging.failures`: which failures are the message's, and how a failing delivery is taken apart."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import pytest
from aiokafka.errors import KafkaConnectionError

from shared.messaging.failures import RetryPolicy, is_transient, process_isolating

NO_WAIT = RetryPolicy(attempts=3, backoff=0.0)


@pytest.mark.parametrize("exc", [ConnectionRefusedError(), TimeoutError(), KafkaConnectionError(),
                                 asyncpg.exceptions.UndefinedTableError(), asyncpg.exceptions.AdminShutdownError(),
                                 asyncpg.exceptions.InsufficientPrivilegeError(), asyncpg.InterfaceError("closed")])
def test_the_infrastructure_is_waited_for(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [ValueError("bad"), KeyError("x"), asyncpg.exceptions.NumericValueOutOfRangeError(),
                                 asyncpg.exceptions.UniqueViolationError()])
def test_what_a_message_causes_is_not(exc: BaseException) -> None:
    assert not is_transient(exc)


async def test_a_failing_batch_is_retried_then_taken_apart() -> None:
    calls: list[list[int]] = []
    done: list[int] = []

    async def process(items: Sequence[int]) -> None:
        calls.append(list(items))
        if 3 in items or 5 in items:
            raise ValueError(f"cannot take {items}")
        done.extend(items)

    failed = await process_isolating([1, 2, 3, 4, 5, 6], process, NO_WAIT)
    assert [(item, str(exc)) for item, exc in failed] == [(3, "cannot take [3]"), (5, "cannot take [5]")]
    assert done == [1, 2, 4, 6]
    assert calls[:3] == [[1, 2, 3, 4, 5, 6]] * 3  # the batch, three times
    assert calls[3:] == [[1], [2], [3], [3], [3], [4], [5], [5], [5], [6]]


async def test_a_transient_failure_is_raised_at_once() -> None:
    calls = 0

    async def process(items: Sequence[int]) -> None:
        nonlocal calls
        calls += 1
        raise ConnectionResetError("postgres went away")

    with pytest.raises(ConnectionResetError):
        await process_isolating([1, 2], process, NO_WAIT)
    assert calls == 1
