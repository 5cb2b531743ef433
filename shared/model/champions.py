"""The champion model of each stream (symbol, interval), loaded and ready: one cache for the
predictor and the gateway.

The `models` table, not the `ModelPromoted` event, is the truth: events may arrive late or out of
order, a process may have missed one while down, and a refresh that reads the table converges in
every case. Loading a saved model costs seconds (TensorFlow import, deserialisation) and runs in
a thread; a prediction costs about a millisecond. So the loaded champion is kept, reloaded only
when the table names another version, and the old one keeps answering until the new one is
ready (a switch drops no candle). A champion that cannot be loaded leaves the current one in
place, and `problem()` says why there is none.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from shared.config import INTERVAL_MS
from shared.model.forecaster import Forecaster
from shared.storage.models_registry import get_champion, latest_challengers

log = logging.getLogger(__name__)

Stream = tuple[str, str]  # (symbol, interval)
Loader = Callable[[Path], Forecaster]
#: Called after each switch: (symbol, interval, old version or None, new version).
OnChange = Callable[[str, str, str | None, str], None]


def load_artifact(path: Path) -> Forecaster:
    from shared.model.artifacts import load_model  # imports the model kind's library: only when there is a model

    return load_model(path)


@dataclass(frozen=True)
class Champion:
    version: str
    model: Forecaster


class ChampionCache:
    def __init__(
        self,
        pool: asyncpg.Pool,
        model_dir: Path | None = None,
        *,
        loader: Loader = load_artifact,
        on_change: OnChange | None = None,
        with_challengers: bool = False,
    ) -> None:
        self._pool = pool
        self._model_dir = model_dir
        self._loader = loader
        self._on_change = on_change
        self._with_challengers = with_challengers
        self._champions: dict[Stream, Champion] = {}
        self._challengers: dict[Stream, list[Champion]] = {}
        self._problems: dict[Stream, str] = {}
        self._locks: dict[Stream, asyncio.Lock] = {}
        self._variants: dict[str, Champion] = {}  # by the variant's own version
        self._loaded: weakref.WeakValueDictionary[Path, Forecaster] = weakref.WeakValueDictionary()

    async def _load(self, path: Path) -> Forecaster:
        """One loaded model per artifact folder (folders are immutable), however many streams it
        serves: a model trained for several symbols is loaded once, and the streams that share it
        share one stacked inference in the predictor. 400 streams of one artifact held 855 MiB
        of predictor memory when each stream loaded its own copy."""
        model = self._loaded.get(path)
        if model is None:
            model = await asyncio.to_thread(self._loader, path)
            self._loaded[path] = model
        return model

    def get(self, symbol: str, interval: str) -> Champion | None:
        return self._champions.get((symbol, interval))

    def problem(self, symbol: str, interval: str) -> str | None:
        """Why the last refresh found no usable champion (None when it did)."""
        return self._problems.get((symbol, interval))

    def challengers(self, symbol: str, interval: str) -> list[Champion]:
        """The shadows of the stream (`refresh_challengers`): they predict live, never served."""
        return self._challengers.get((symbol, interval), [])

    async def refresh_challengers(self, symbol: str, interval: str) -> list[Champion]:
        """The newest model of every other kind than the champion's; one that cannot load is left out."""
        stream = (symbol, interval)
        known = {c.version: c for c in self._challengers.get(stream, [])}
        current = []
        for record in await latest_challengers(self._pool, symbol, interval):
            challenger = known.get(record.version)
            if challenger is None:
                try:
                    challenger = Champion(record.version, await self._load(self.resolve(record.artifact_path)))
                except Exception as exc:
                    log.warning("challenger %s for %s %s not loaded: %s", record.version, symbol, interval, exc)
                    continue
            current.append(challenger)
        self._challengers[stream] = current
        return current

    async def variant(self, symbol: str, interval: str, name: str) -> tuple[str, Champion] | str:
        """The champion's variant `name` (e.g. "ohlc"), loaded once: (champion version, variant),
        or why there is none."""
        record = await get_champion(self._pool, symbol, interval)
        if record is None:
            return f"no model for {symbol} {interval} yet: train one (POST /train or `candlecast train`)"
        info = record.variants.get(name)
        if not info:
            return (f"model {record.version} for {symbol} {interval} has no {name} variant yet (it is trained "
                    "beside each new champion); send Binance's kline fields meanwhile")
        loaded = self._variants.get(info["version"])
        if loaded is None:
            try:
                model = await self._load(self.resolve(info["artifact_path"]))
            except Exception as exc:
                log.error("cannot load the %s variant %s of %s: %s", name, info["version"], record.version, exc)
                return f"the {name} variant of {record.version} cannot be loaded: {exc}"
            loaded = self._variants[info["version"]] = Champion(info["version"], model)
        return record.version, loaded

    def streams(self) -> list[Stream]:
        return list(self._champions)

    def resolve(self, artifact_path: str) -> Path:
        path = Path(artifact_path)
        return path if path.is_absolute() or self._model_dir is None else self._model_dir / path

    async def refresh(self, symbol: str, interval: str) -> Champion | None:
        """Load the table's champion if it is not the one in use; keep the current one on any failure."""
        stream = (symbol, interval)
        async with self._locks.setdefault(stream, asyncio.Lock()):
            current = self._champions.get(stream)
            record = await get_champion(self._pool, symbol, interval)
            if record is None:
                if current is None:
                    self._problems[stream] = (
                        f"no model for {symbol} {interval} yet: train one (POST /train or `candlecast train`)")
                return current
            if current is not None and current.version == record.version:
                return current
            path = self.resolve(record.artifact_path)
            try:
                if not path.exists():
                    raise FileNotFoundError(f"model {record.version} is registered but its files are missing ({path})")
                model = await self._load(path)
                expected = INTERVAL_MS.get(interval)
                if expected is not None and model.interval_ms != expected:
                    raise ValueError(f"model {record.version} was trained on {model.interval_ms} ms candles, "
                                     f"the {interval} stream has {expected} ms")
            except Exception as exc:
                reason = str(exc) if isinstance(exc, FileNotFoundError | ValueError) else \
                    f"model at {path} cannot be loaded: {exc}"
                log.error("cannot load champion %s for %s %s (%s); keeping %s", record.version, symbol, interval,
                          reason, current.version if current else "no model")
                if current is None:
                    self._problems[stream] = reason
                return current
            champion = Champion(record.version, model)
            self._champions[stream] = champion
            self._problems.pop(stream, None)
            log.info("%s %s now predicts with %s (was %s)", symbol, interval, record.version,
                     current.version if current else "no model")
            if self._on_change is not None:
                self._on_change(symbol, interval, current.version if current else None, record.version)
            return champion

    async def watch(self, streams: Callable[[], Iterable[Stream]], period: float = 30.0) -> None:
        """Re-read the table now and then: the safety net for a missed `ModelPromoted`."""
        while True:
            await asyncio.sleep(period)
            for symbol, interval in {*streams(), *self._champions}:
                try:
                    await self.refresh(symbol, interval)
                    if self._with_challengers:
                        await self.refresh_challengers(symbol, interval)
                except (OSError, asyncpg.PostgresError) as exc:
                    log.warning("champion refresh for %s %s failed: %s", symbol, interval, exc)
