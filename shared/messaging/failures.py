"""A delivery whose handler keeps failing: retried, then taken apart, its poison dead-lettered.

Two kinds of failure look alike in a handler and must not be treated alike:

* the infrastructure is away or broken (Postgres restarting, Kafka unreachable, a table missing
  or a permission revoked — every database error but a data or integrity error): not the
  messages' fault. The delivery is replayed until it is fixed; nothing is dead-lettered.
* anything else (a value the database refuses, a bug a message triggers): replaying it forever
  would stall its partition behind it. The batch is tried `attempts` times with backoff, then
  one message at a time; a message that fails alone (again `attempts` times) is returned with
  its error for the dead-letter topic, and every other message is processed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
from aiokafka.errors import KafkaError

from shared.config import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Failures of the infrastructure, not of a message: the delivery waits for it (replayed).
INFRASTRUCTURE: tuple[type[BaseException], ...] = (
    OSError,  # connection refused or reset, included by ConnectionError
    TimeoutError,
    KafkaError,
    asyncpg.InterfaceError,  # e.g. the pool or the connection closed under us
)
#: The database errors a message can cause (SQLSTATE classes 22 and 23); any other is the database's.
MESSAGE_FAULTS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` says the infrastructure is away or broken, rather than the message being bad."""
    if isinstance(exc, INFRASTRUCTURE):
        return True
    return isinstance(exc, asyncpg.PostgresError) and not isinstance(exc, MESSAGE_FAULTS)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    backoff: float = 1.0  # seconds before the second try, doubled for each later one

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.handler_attempts, settings.handler_backoff_seconds)


async def process_isolating(
    items: Sequence[T],
    process: Callable[[Sequence[T]], Awaitable[None]],
    policy: RetryPolicy,
    *,
    transient: Callable[[BaseException], bool] = is_transient,
    what: str = "a batch",
) -> list[tuple[T, BaseException]]:
    """Process `items` (retrying, then one by one); returns the items that failed alone, with why.

    A transient error is raised at once, for the caller to replay the delivery.
    """
    if not items:
        await process(items)
        return []
    error: BaseException | None = None
    for attempt in range(policy.attempts):
        try:
            await process(items)
            return []
        except Exception as exc:
            if transient(exc):
                raise
            error = exc
            log.warning("%s of %d failed (attempt %d of %d): %s: %s", what, len(items), attempt + 1, policy.attempts,
                        type(exc).__name__, exc)
            if attempt + 1 < policy.attempts:
                await asyncio.sleep(policy.backoff * 2**attempt)
    assert error is not None
    if len(items) == 1:
        log.error("%s failed %d times: %s: %s", what, policy.attempts, type(error).__name__, error)
        return [(items[0], error)]
    log.error("%s of %d keeps failing; trying its messages one by one", what, len(items))
    failed: list[tuple[T, BaseException]] = []
    for item in items:
        failed += await process_isolating([item], process, policy, transient=transient, what="a message")
    return failed


def failure_reason(exc: BaseException) -> str:
    """The dead letter's reason for a message its handler could not process."""
    return f"handler failed: {type(exc).__name__}: {exc}"
