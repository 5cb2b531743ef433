"""A random-fault soak: the whole pipeline running on the stand-in while faults come every 20-40 s
(overlapping when one is still held), then a settle and the invariant over the whole range.

    warm-up   every service up, predictions caught up with the stand-in: the range starts here
    faults    `Nemesis` picks a kind and a target at random (the seed is printed and reported)
    settle    every fault undone, a service that died on its own restarted (and reported), then
              predictions caught up again
    check     per stream, over the range: every candle stored once and predicted once (`futures`),
              every candle once in the `candles` topic; recovery per fault; close -> prediction
              latency per fault kind beside the quiet stretches

"Caught up" means the stream's newest prediction is at most one candle behind the stand-in's
clock (at 600x, a 5m candle closes every 0.5 s). A fault's recovery runs from the moment it was
undone to the start of the first stretch of `STEADY` seconds in which every stream stayed caught
up: some faults bite after they are undone (a burst of 429s is met only by the reconnect's
catch-up, each 429 waited out), and the first caught-up sample after them would say nothing.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from shared.config import interval_ms
from shared.infra.stack import SERVICES
from shared.market.streams import Stream
from shared.messaging import topics
from testkit.invariants import check_invariants
from testkit.kafka import read_topic
from testkit.nemesis import FAULT_KINDS, Fault, Nemesis
from testkit.soak_stack import SoakStack
from testkit.waiting import eventually


@dataclass(frozen=True)
class ClockMap:
    """The stand-in's clock against this machine's: its speed and one reading of both."""

    wall_s: float
    sim_ms: int
    speed: float

    def sim_now(self) -> int:
        return self.sim_ms + int((time.time() - self.wall_s) * 1000 * self.speed)

    def wall_of(self, sim_ms: int) -> float:
        return self.wall_s + (sim_ms - self.sim_ms) / 1000 / self.speed


async def read_clock(sim_port: int) -> ClockMap:
    """The stand-in's `/_sim/clock`, read once, against this machine's clock."""
    async with httpx.AsyncClient(timeout=10) as client:
        before = time.time()
        body = (await client.get(f"http://127.0.0.1:{sim_port}/_sim/clock")).json()
        after = time.time()
    return ClockMap((before + after) / 2, int(body["now"]), float(body["speed"]))


def last_closed(clock: ClockMap, step: int) -> int:
    """Open time of the newest candle the stand-in has closed."""
    return (clock.sim_now() // step) * step - step


#: Seconds every stream must stay caught up for the system to count as recovered.
STEADY = 5.0


class Monitor:
    """Samples, twice a second, how many candles each stream's predictions are behind."""

    def __init__(self, stack: SoakStack, clock: ClockMap) -> None:
        self.stack = stack
        self.clock = clock
        self.samples: list[tuple[float, bool]] = []  # (wall time, every stream caught up)

    async def newest_futures(self) -> dict[Stream, int] | None:
        try:
            conn = await asyncpg.connect(self.stack.settings.database, timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return None
        try:
            found = {}
            for stream in self.stack.settings.streams:
                found[stream] = await conn.fetchval(
                    "SELECT max(time) FROM futures WHERE symbol = $1 AND interval = $2", *stream) or 0
            return found
        except (OSError, asyncpg.PostgresError):
            return None
        finally:
            await conn.close()

    async def caught_up(self) -> bool:
        newest = await self.newest_futures()
        if newest is None:
            return False
        return all(newest[s] >= last_closed(self.clock, interval_ms(s.interval)) for s in newest)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.samples.append((time.time(), await self.caught_up()))
            await asyncio.sleep(0.5)

    def recovered_after(self, wall: float) -> float | None:
        """Start of the first `STEADY` stretch after `wall` in which every sample was caught up."""
        start = None
        for t, ok in self.samples:
            if t < wall:
                continue
            if not ok:
                start = None
            elif start is None:
                start = t
            elif t - start >= STEADY:
                return start
        return None

    async def steady(self) -> bool:
        """Caught up now, and in every sample of the last `STEADY` seconds."""
        now = time.time()
        recent = [ok for t, ok in self.samples if t >= now - STEADY]
        return await self.caught_up() and len(recent) >= STEADY / 0.5 - 2 and all(recent)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {"n": len(ordered), "p50_ms": round(statistics.median(ordered), 1),
            "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 1), "max_ms": round(ordered[-1], 1)}


async def run_soak(stack: SoakStack, minutes: float, seed: int | None = None, *, gap: tuple[float, float] = (20, 40),
                   warmup_within: float = 600, settle_within: float = 600,
                   say: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the soak on a started `stack`; returns the report (see the module's docstring)."""
    # Not the module-level generator: training a model (the tiny champion) seeds it, and every
    # soak would then pick the same "random" seed.
    seed = random.SystemRandom().randrange(1_000_000) if seed is None else seed
    rng = random.Random(seed)
    say(f"soak: seed {seed}, {minutes:g} minutes, a fault every {gap[0]:g}-{gap[1]:g} s")
    clock = await read_clock(stack.settings.sim_port)
    monitor = Monitor(stack, clock)
    warmup_s = await eventually(monitor.caught_up, "the first predictions caught up with the stand-in",
                                within=warmup_within, every=0.5)
    newest = await monitor.newest_futures()
    assert newest is not None
    start = dict(newest)
    say(f"soak: predictions caught up after {warmup_s:.0f} s; faults begin")

    stop = asyncio.Event()
    watching = asyncio.create_task(monitor.run(stop))
    nemesis = Nemesis(stack, rng, say)
    began = time.monotonic()
    deadline = began + minutes * 60
    tasks: list[asyncio.Task[Fault]] = []
    at = began + rng.uniform(5, gap[0])
    while at < deadline:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        tasks.append(asyncio.create_task(nemesis.inject(*nemesis.choose())))
        at += rng.uniform(*gap)
    await asyncio.sleep(max(0.0, deadline - time.monotonic()))
    await asyncio.gather(*tasks)

    crashed = [name for name in ("sim", *SERVICES) if not stack.running(name)]
    for name in crashed:  # a service that died of a fault it should have survived: a finding
        say(f"soak: {name} was not running at the end; restarted")
        await stack.started(name)
    settle_s = await eventually(monitor.steady, "predictions steadily caught up after the last fault",
                                within=settle_within, every=0.5)
    await asyncio.sleep(STEADY + 1.0)  # the last stretch seen whole, for the last fault's recovery
    stop.set()
    await watching
    for fault in nemesis.faults:
        fault.recovered_at = monitor.recovered_after(fault.restored_at or fault.injected_at)

    report = await _check(stack, clock, start)
    kinds = Counter(f.kind for f in nemesis.faults)
    recoveries = [f.recovery_s for f in nemesis.faults if f.recovery_s is not None]
    report.update({
        "seed": seed, "minutes": minutes,
        "faults": {kind: kinds.get(kind, 0) for kind in FAULT_KINDS},
        "fault_log": [{"kind": f.kind, "target": f.target, "at_s": round(f.injected_at - clock.wall_s, 1),
                       "held_s": round((f.restored_at or f.injected_at) - f.injected_at, 1),
                       "recovery_s": None if f.recovery_s is None else round(f.recovery_s, 1), "detail": f.detail}
                      for f in nemesis.faults],
        "max_recovery_s": round(max(recoveries), 1) if recoveries else 0.0,
        "unrecovered": sum(f.recovery_s is None for f in nemesis.faults),
        "recovery_s_by_kind": {kind: round(max(f.recovery_s or 0.0 for f in nemesis.faults if f.kind == kind), 1)
                               for kind in kinds},
        "warmup_s": round(warmup_s, 1), "settle_s": round(settle_s, 1),
        "poison_sent": nemesis.poison_sent, "died_on_their_own": crashed,
    })
    report["latency_ms"] = await _latency(stack, clock, start, nemesis.faults)
    return report


async def _check(stack: SoakStack, clock: ClockMap, start: dict[Stream, int]) -> dict[str, Any]:
    settings = stack.settings
    totals = Counter[str]()
    per_stream = {}
    conn = await asyncpg.connect(settings.database)
    try:
        for stream in settings.streams:
            step = interval_ms(stream.interval)
            # To the newest stored candle: one just closed may still be on its way, not lost;
            # a hole before it is found all the same.
            stored = await conn.fetchval("SELECT max(open_time) FROM candles WHERE symbol = $1 AND interval = $2",
                                         *stream)
            end = min(last_closed(clock, step), int(stored or 0))
            found = await check_invariants(conn, stream.symbol, stream.interval, step, start[stream], end, 0)
            per_stream[f"{stream.symbol} {stream.interval}"] = str(found)
            totals.update(candles=found.candles, predictions=found.futures_expected - len(found.missing_futures),
                          missing_candles=len(found.missing_candles), duplicate_candles=len(found.duplicate_candles),
                          missing_futures=len(found.missing_futures), duplicate_futures=len(found.duplicate_futures))
    finally:
        await conn.close()
    seen: Counter[tuple[str, str, int]] = Counter()
    for record in await read_topic(settings, topics.CANDLES, within=120):
        try:
            body = json.loads(record.value)
            seen[(body["symbol"], body["interval"], int(body["open_time"]))] += 1
        except (ValueError, KeyError, TypeError):
            continue  # the soak's own poison: it belongs in the dead-letter topic, checked below
    topic_doubles = sum(1 for n in seen.values() if n > 1)
    dead_letters = len(await read_topic(settings, topics.DEAD_LETTER, within=60))
    return {
        "streams": per_stream,
        "candles": totals["candles"], "predictions": totals["predictions"],
        "lost": totals["missing_candles"] + totals["missing_futures"],
        "doubled": totals["duplicate_candles"] + totals["duplicate_futures"] + topic_doubles,
        "missing_candles": totals["missing_candles"], "duplicate_candles": totals["duplicate_candles"],
        "missing_futures": totals["missing_futures"], "duplicate_futures": totals["duplicate_futures"],
        "topic_duplicates": topic_doubles, "dead_letters": dead_letters,
    }


async def _latency(stack: SoakStack, clock: ClockMap, start: dict[Stream, int],
                   faults: list[Fault]) -> dict[str, dict[str, float]]:
    """Close -> prediction published, per fault kind (the predictions whose candle closed while a
    fault of that kind was on or not yet recovered from) and for the quiet stretches."""
    first: dict[tuple[str, str, int], float] = {}
    for record in await read_topic(stack.settings, topics.PREDICTIONS, within=120):
        body = json.loads(record.value)
        if body.get("kind", "prediction") != "prediction":
            continue
        key = (body["symbol"], body["interval"], int(body["target_time"]))
        if Stream(key[0], key[1]) in start and key[2] > start[Stream(key[0], key[1])]:
            first.setdefault(key, record.timestamp / 1000)
    windows = [(f.kind, f.injected_at, f.recovered_at or time.time()) for f in faults]
    by_kind: dict[str, list[float]] = {"quiet": []}
    for (_, _, target), published in first.items():
        closed = clock.wall_of(target)
        kinds = {kind for kind, lo, hi in windows if lo <= closed <= hi}
        for kind in kinds or {"quiet"}:
            by_kind.setdefault(kind, []).append(1000 * (published - closed))
    return {kind: _percentiles(values) for kind, values in by_kind.items()}
