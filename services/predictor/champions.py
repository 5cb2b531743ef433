"""The champion model of each symbol, loaded and ready; switched when the `models` table says so.

The table, not the `ModelPromoted` event, is the truth: events may arrive late or out of order,
a predictor may have missed one while down, and a refresh that reads the table converges in
every case. Loading runs in a thread, and the old model keeps predicting until the new one is
ready, so a switch drops no candle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from services.predictor.metrics import MODEL_INFO
from shared.model.inference import LoadedModel
from shared.models_registry import get_champion

log = logging.getLogger(__name__)

NO_MODEL = "none"

Loader = Callable[[str], LoadedModel]


def load_artifact(path: str) -> LoadedModel:
    from shared.model.artifacts import load_model  # imports Keras: only when there is a model to load

    return load_model(Path(path))


@dataclass(frozen=True)
class Champion:
    version: str
    model: LoadedModel


class Champions:
    def __init__(self, pool: asyncpg.Pool, interval: str, interval_ms: int, loader: Loader = load_artifact) -> None:
        self._pool = pool
        self._interval = interval
        self._interval_ms = interval_ms
        self._loader = loader
        self._champions: dict[str, Champion] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._said_none: set[str] = set()

    def get(self, symbol: str) -> Champion | None:
        return self._champions.get(symbol)

    async def refresh(self, symbol: str) -> Champion | None:
        """Load the table's champion if it is not the one in use; keep the current one on any failure."""
        async with self._locks.setdefault(symbol, asyncio.Lock()):
            current = self._champions.get(symbol)
            record = await get_champion(self._pool, symbol, self._interval)
            if record is None:
                if current is None:
                    MODEL_INFO.labels(symbol, NO_MODEL).set(1)
                    if symbol not in self._said_none:
                        self._said_none.add(symbol)
                        log.warning("no champion model for %s %s yet: consuming candles, not predicting",
                                    symbol, self._interval)
                return current
            if current is not None and current.version == record.version:
                return current
            try:
                model = await asyncio.to_thread(self._loader, record.artifact_path)
                if model.interval_ms != self._interval_ms:
                    raise ValueError(f"trained on {model.interval_ms} ms candles, this predictor serves "
                                     f"{self._interval_ms} ms")
            except Exception as exc:
                log.error("cannot load champion %s from %s (%s); keeping %s", record.version, record.artifact_path,
                          exc, current.version if current else "no model")
                return current
            champion = Champion(record.version, model)
            self._champions[symbol] = champion
            with contextlib.suppress(KeyError):
                MODEL_INFO.remove(symbol, current.version if current else NO_MODEL)
            MODEL_INFO.labels(symbol, record.version).set(1)
            log.info("%s %s now predicts with %s (was %s)", symbol, self._interval, record.version,
                     current.version if current else "no model")
            return champion

    async def watch(self, symbols: list[str], period: float = 30.0) -> None:
        """Re-read the table now and then: the safety net for a missed `ModelPromoted`."""
        while True:
            await asyncio.sleep(period)
            for symbol in {*symbols, *self._champions}:
                try:
                    await self.refresh(symbol)
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("champion refresh for %s failed: %s", symbol, exc)
