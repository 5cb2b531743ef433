"""The soak's faults, in random order (Jepsen calls this part the nemesis).

Each fault is injected, held for a random time and undone (a killed process restarted, as a
supervisor or Compose's restart policy would); faults run as tasks of their own, so they overlap
when one is still held as the next comes. Only one fault holds a given target at a time (the
same service is not killed twice over; one Kafka node is down at most, since two of three would
take the quorum and `min.insync.replicas=2` with them: an outage, not a fault to survive).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from shared.infra.stack import SERVICES
from shared.messaging import topics
from testkit.kafka import publish_raw
from testkit.soak_stack import SoakStack

#: Every kind the soak injects, each with what it does.
FAULT_KINDS = {
    "sigkill": "SIGKILL of a service (ingestor, predictor, trainer or gateway), restarted 1-15 s later",
    "sigterm": "SIGTERM of a service, its clean exit awaited, restarted 1-15 s later",
    "broker_kill": "SIGKILL of a Kafka node, started again 5-40 s later",
    "postgres_restart": "Postgres stopped (fast: connections cut) and started 2-15 s later",
    "ws_freeze": "the stand-in's websockets go quiet, left open, for 20-60 s",
    "rate_limit_429": "the stand-in answers the next 5-30 REST calls with 429, and cuts the websockets "
                      "so the catch-up meets them",
    "server_shutdown": "the stand-in's serverShutdown notice and close on every websocket",
    "poison": "undecodable and contract-breaking records into the candles topic, in the symbol's partition",
}

#: Records no consumer can read: not JSON, and JSON that breaks the Candle contract.
POISON = (b"\x00\xffnot json", b'{"schema_version": 1, "symbol": "BTCUSDT", "open_time": "soon"}')


@dataclass
class Fault:
    kind: str
    target: str
    injected_at: float  # wall time (time.time())
    restored_at: float | None = None  # when it was undone (the same as injected for one-shot faults)
    recovered_at: float | None = None  # when predictions caught up with the stand-in again
    detail: str = ""

    @property
    def recovery_s(self) -> float | None:
        if self.restored_at is None or self.recovered_at is None:
            return None
        return max(0.0, self.recovered_at - self.restored_at)


class Nemesis:
    def __init__(self, stack: SoakStack, rng: random.Random, say: Callable[[str], None] = print) -> None:
        self.stack = stack
        self.rng = rng
        self.say = say
        self.busy: set[str] = set()
        self.faults: list[Fault] = []
        self.poison_sent = 0
        self.deck: list[str] = []

    @property
    def sim(self) -> str:
        return f"http://127.0.0.1:{self.stack.settings.sim_port}/_sim"

    def choose(self) -> tuple[str, str]:
        """The next kind from a shuffled deck of every kind (each comes once a round, in random
        order, so a ten-minute run meets all of them), then a target of it not already held by
        another fault; a kind with no free target goes back under the deck."""
        while True:
            if not self.deck:
                self.deck = sorted(FAULT_KINDS)
                self.rng.shuffle(self.deck)
            kind = self.deck.pop(0)
            if kind in ("sigkill", "sigterm"):
                free = [s for s in SERVICES if s not in self.busy]
                if free:
                    return kind, self.rng.choice(free)
            elif kind == "broker_kill":
                if "broker" not in self.busy and len(self.stack.nodes()) > 1:
                    return kind, f"kafka-{self.rng.choice(self.stack.nodes()).index}"
            elif kind in ("postgres_restart", "ws_freeze"):
                target = "postgres" if kind == "postgres_restart" else "websocket"
                if target not in self.busy:
                    return kind, target
            else:
                return kind, "stand-in" if kind != "poison" else "candles topic"
            self.deck.append(kind)

    async def inject(self, kind: str, target: str) -> Fault:
        """Inject, hold and undo one fault; returns its record (also kept in `faults`)."""
        fault = Fault(kind, target, time.time())
        self.faults.append(fault)
        hold_key = "broker" if kind == "broker_kill" else target
        self.busy.add(hold_key)
        try:
            await getattr(self, f"_{kind}")(fault)
        finally:
            self.busy.discard(hold_key)
            if fault.restored_at is None:
                fault.restored_at = time.time()
        self.say(f"  {time.strftime('%H:%M:%S')} {kind} {target} {fault.detail} "
                 f"(held {fault.restored_at - fault.injected_at:.1f} s)")
        return fault

    async def _hold(self, low: float, high: float, fault: Fault) -> None:
        seconds = self.rng.uniform(low, high)
        fault.detail += f"{seconds:.0f} s down"
        await asyncio.sleep(seconds)

    async def _sigkill(self, fault: Fault) -> None:
        self.stack.signal(fault.target, signal.SIGKILL)
        await self.stack.exited(fault.target, 10)
        await self._hold(1, 15, fault)
        await self.stack.started(fault.target)

    async def _sigterm(self, fault: Fault) -> None:
        self.stack.signal(fault.target, signal.SIGTERM)
        clean = await self.stack.exited(fault.target, 30)
        fault.detail = "" if clean else "(no exit within 30 s: killed) "
        await self._hold(1, 15, fault)
        await self.stack.started(fault.target)

    async def _broker_kill(self, fault: Fault) -> None:
        node = next(n for n in self.stack.nodes() if f"kafka-{n.index}" == fault.target)
        pid = node.process.pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        await self._hold(5, 40, fault)
        await asyncio.to_thread(self.stack.kafka.start_node, node)

    async def _postgres_restart(self, fault: Fault) -> None:
        await asyncio.to_thread(self.stack.postgres.down)
        await self._hold(2, 15, fault)
        await asyncio.to_thread(self.stack.postgres.up)

    async def _ws_freeze(self, fault: Fault) -> None:
        seconds = round(self.rng.uniform(20, 60))
        async with httpx.AsyncClient(timeout=10) as client:
            answer = (await client.post(f"{self.sim}/freeze", params={"seconds": seconds})).json()
        fault.detail = f"{seconds} s, {answer['frozen']} connection(s)"
        await asyncio.sleep(seconds)

    async def _rate_limit_429(self, fault: Fault) -> None:
        count, retry_after = self.rng.randint(5, 30), self.rng.randint(1, 5)
        async with httpx.AsyncClient(timeout=10) as client:
            await client.post(f"{self.sim}/rate-limit", params={"count": count, "retry_after": retry_after})
            dropped = (await client.post(f"{self.sim}/drop-connections")).json()["dropped"]
        fault.detail = f"{count} x 429 (Retry-After {retry_after} s), {dropped} connection(s) cut"

    async def _server_shutdown(self, fault: Fault) -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            told = (await client.post(f"{self.sim}/server-shutdown")).json()["notified"]
        fault.detail = f"{told} connection(s) told"

    async def _poison(self, fault: Fault) -> None:
        settings = self.stack.settings
        symbol = settings.symbols[0]
        await publish_raw(settings, topics.CANDLES, list(POISON), key=topics.symbol_key(symbol))
        self.poison_sent += len(POISON)
        fault.detail = f"{len(POISON)} records"
