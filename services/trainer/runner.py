"""One training run of a stream: load its history, train in the worker, compare, promote or reject.

Every run writes a `job_logs` row (running, then success, rejected or failed, with the numbers
in its message) and, once a model exists, a `models` row. A promotion is published as
`ModelPromoted`, and then the champion's series over the stored history is rebuilt (its own
`job_logs` row), so charts show real against predicted straight away.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

import asyncpg
import pandas as pd
from faststream.kafka import KafkaBroker

from services.trainer import store
from services.trainer.jobs import (
    Candidates,
    SeriesJob,
    TrainJob,
    TrainOutcome,
    VariantJob,
    rebuild_series,
    train_candidates,
    train_variant,
)
from services.trainer.locks import StreamLocks
from services.trainer.metrics import MODEL_SCORE, PROMOTIONS, REJECTED, TRAINING_SECONDS
from services.trainer.worker import make_executor, shutdown_executor
from shared.config import Settings, interval_ms
from shared.market.streams import DAY_MS, Stream
from shared.messaging import topics
from shared.messaging.events import ModelPromoted
from shared.model.forecaster import KINDS
from shared.model.training import TrainConfig
from shared.storage import models_registry as registry
from shared.storage.candle_store import candle_span, load_candles

log = logging.getLogger(__name__)

#: Metrics shown per model on /metrics and carried by `ModelPromoted`.
SCORES = ("close_mae", "close_mape", "skill", "direction_accuracy")
#: Seconds between tries for a stream another trainer is training.
LOCK_RETRY_SECONDS = 2.0


@dataclass(frozen=True)
class Verdict:
    promote: bool
    message: str


def judge(outcome: TrainOutcome, champion: str | None) -> Verdict:
    """Promote if there is no champion, or if the candidate's close MAE is lower on the same rows."""
    c = outcome.comparison
    mine = c.candidate.get("close_mae")
    theirs = (c.champion or {}).get("close_mae")
    baselines = ", ".join(f"{name} {m['close_mae']:.4f}" for name, m in c.baselines.items() if "close_mae" in m)
    rows = f"on {c.rows} rows from {c.since_ms}" if c.rows else "without comparable rows"
    note = f" ({c.note})" if c.note else ""
    if champion is None or theirs is None:
        verdict = "promoted (no champion to beat)" if champion is None else "promoted (champion not comparable)"
        score = f"close MAE {mine:.4f}" if mine is not None else "no test metrics"
        return Verdict(True, f"{outcome.version} {verdict}: {score} {rows}; baselines: {baselines}{note}")
    if mine is None:
        return Verdict(False, f"{outcome.version} rejected: no metrics {rows}; champion {champion} stays{note}")
    better = mine < theirs
    head = f"{outcome.version} {'promoted' if better else 'rejected'}"
    tail = "" if better else f"; champion {champion} stays"
    return Verdict(
        better,
        f"{head}: close MAE {mine:.4f} vs champion {champion} {theirs:.4f} {rows}; baselines: {baselines}{tail}{note}",
    )


def _kinds_note(candidates: Candidates) -> str:
    """Every kind's close MAE on the compared rows, and the kinds that failed, for `job_logs`."""
    parts = [f"{o.kind} {o.comparison.candidate['close_mae']:.4f}" if "close_mae" in o.comparison.candidate
             else f"{o.kind} no metrics" for o in candidates.outcomes]
    parts += [f"{kind} failed ({error})" for kind, error in candidates.failures.items()]
    return "kinds (close MAE): " + ", ".join(parts)


class Trainer:
    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        broker: KafkaBroker,
        executor: Executor,
        config: TrainConfig | None = None,
        locks: StreamLocks | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.broker = broker
        self.executor = executor
        self.locks = locks or StreamLocks(settings.database)
        unknown = set(settings.train_config) - set(TrainConfig.__dataclass_fields__)
        if unknown:  # a typo must not train with defaults silently
            raise ValueError(f"CANDLECAST_TRAIN_CONFIG: unknown TrainConfig fields {sorted(unknown)}")
        self.config = config or TrainConfig.from_dict(
            {"window": settings.window, "interval_ms": settings.interval_ms, **settings.train_config}
        )  # the interval's length is set per stream (`_config`)
        unknown_kinds = set(settings.model_kinds) - set(KINDS)
        if unknown_kinds or not settings.model_kinds:
            raise ValueError(f"CANDLECAST_MODEL_KINDS: unknown kinds {sorted(unknown_kinds)}; "
                             f"known: {', '.join(KINDS)}")
        self.kinds = tuple(dict.fromkeys(settings.model_kinds))
        self._scored: dict[Stream, set[str]] = {}
        self._runs = asyncio.Semaphore(settings.trainer_runs_at_once)

    def _config(self, interval: str) -> TrainConfig:
        return replace(self.config, interval_ms=interval_ms(interval))

    async def run(self, stream: Stream, reasons: Sequence[str], requested_ms: int | None = None) -> str:
        """One run for `stream` once no trainer holds it (`services.trainer.locks`); returns its
        `job_logs` status, or "served" when a run that started after the request (on any trainer)
        served it already.

        At most `trainer_runs_at_once` runs go on at once (a daily tick asks for every stream at the
        same instant): the trainings share the one worker anyway, and each run holds its stream's
        history in memory (400 streams of 90 days of 1m: 5 GB). Two let one run load candles and
        write its series while the worker trains the next. A waiting run holds no stream lock."""
        async with self._runs:
            await self.locks.lock(stream, every=LOCK_RETRY_SECONDS)
            try:
                if requested_ms is not None:
                    started = await store.run_started_after(self.pool, *stream, requested_ms)
                    if started is not None:
                        log.info("%s: %s served by the run that started at %s", stream, "; ".join(reasons), started)
                        return "served"
                return await self._train(stream, reasons)
            finally:
                await self.locks.unlock(stream)

    async def _train(self, stream: Stream, reasons: Sequence[str]) -> str:
        symbol, interval = stream
        why = "reasons: " + "; ".join(reasons)
        job_id = await store.start_job(self.pool, store.TRAIN, symbol, interval, why)
        log.info("training %s %s (%s)", symbol, interval, "; ".join(reasons))
        started = time.perf_counter()
        try:
            champion = await registry.get_champion(self.pool, symbol, interval)
            candles = await self._training_candles(stream)
            job = TrainJob(symbol, interval, candles, self._config(interval), self.settings.model_dir,
                           champion.version if champion else None, champion.artifact_path if champion else None,
                           self.kinds)
            candidates = await asyncio.get_running_loop().run_in_executor(self.executor, train_candidates, job)
            outcome = candidates.best()
            if outcome is None:
                raise RuntimeError("no kind produced a model: " + _kinds_note(candidates))
        except asyncio.CancelledError:
            # The row stays `running`: its trigger is already committed, and `Triggers.recover()` closes
            # and re-runs exactly such rows at the next start, so a deploy does not lose the training.
            log.warning("training %s interrupted by a stop; it resumes at the next start", stream)
            raise
        except Exception as exc:
            await store.finish_job(self.pool, job_id, "failed", f"{type(exc).__name__}: {exc}; {why}")
            log.error("training %s failed: %s", stream, exc)
            self._renew_if_broken(exc)
            return "failed"
        finally:
            TRAINING_SECONDS.observe(time.perf_counter() - started)

        verdict = judge(outcome, champion.version if champion else None)
        kinds = _kinds_note(candidates)
        for candidate in candidates.outcomes:
            await self._record(stream, candidate)
            if candidate is not outcome:  # beaten by another kind on the same rows
                await registry.reject(self.pool, candidate.version)
        if verdict.promote and self.settings.ohlc_variant:  # before it serves: POST /predict may ask at once
            await self._train_variant(stream, candles, outcome)
        if verdict.promote and champion is not None and self.settings.promote_requires_live > 0:
            message = (f"{verdict.message}; predicts in the shadow until {self.settings.promote_requires_live} live "
                       f"candles decide; {kinds}; {why}")
            await store.finish_job(self.pool, job_id, "pending", message, outcome.version)
            log.info(message)
            self._score(stream, outcome, keep={outcome.version, champion.version})
            return "pending"
        if verdict.promote:
            champion_now = await registry.promote(self.pool, outcome.version)
            await store.finish_job(self.pool, job_id, "success", f"{verdict.message}; {kinds}; {why}",
                                   outcome.version)
            await self._announce(stream, outcome)
            PROMOTIONS.labels(symbol, interval).inc()
            log.info(verdict.message)
            self._score(stream, outcome, keep={outcome.version})
            await self.rebuild(champion_now, candles)
            return "success"
        await registry.reject(self.pool, outcome.version)
        await store.finish_job(self.pool, job_id, "rejected", f"{verdict.message}; {kinds}; {why}", outcome.version)
        REJECTED.labels(symbol, interval).inc()
        log.warning(verdict.message)
        self._score(stream, outcome, keep={outcome.version, champion.version} if champion else {outcome.version})
        return "rejected"

    async def check_live(self, stream: Stream) -> list[str]:
        """Candidates waiting for live evidence: promoted once they beat the champion on
        `promote_requires_live` candles both predicted, rejected once they lose; returns the verdicts.
        A stream another trainer holds is left to it."""
        async with self.locks.holding(stream) as mine:
            return await self._check_live(stream) if mine else []

    async def _check_live(self, stream: Stream) -> list[str]:
        symbol, interval = stream
        needed = self.settings.promote_requires_live
        verdicts = []
        for candidate in await registry.pending_candidates(self.pool, symbol, interval):
            champion = await registry.get_champion(self.pool, symbol, interval)
            if champion is None:
                break
            rows, mine, theirs = await store.live_evidence(self.pool, symbol, interval, candidate.version,
                                                           champion.version)
            if rows < needed:
                continue
            better = mine < theirs
            message = (f"{candidate.version} {'promoted' if better else 'rejected'} on live evidence: close MAE "
                       f"{mine:.4f} vs champion {champion.version} {theirs:.4f} on the last {rows} candles both "
                       "predicted")
            job_id = await store.start_job(self.pool, store.TRAIN, symbol, interval, "live evidence")
            if better:
                promoted = await registry.promote(self.pool, candidate.version)
                await store.finish_job(self.pool, job_id, "success", message, candidate.version)
                await self.broker.publish(
                    ModelPromoted(symbol=symbol, interval=interval, version=candidate.version,
                                  artifact_path=candidate.artifact_path,
                                  metrics={k: v for k, v in candidate.metrics.items() if k in SCORES}),
                    self.settings.topic(topics.MODELS), key=topics.symbol_key(symbol))
                PROMOTIONS.labels(symbol, interval).inc()
                await self.rebuild(promoted)
            else:
                await registry.reject(self.pool, candidate.version)
                await store.finish_job(self.pool, job_id, "rejected", message, candidate.version)
                REJECTED.labels(symbol, interval).inc()
            log.info(message)
            verdicts.append(message)
        return verdicts

    async def _train_variant(self, stream: Stream, candles: pd.DataFrame, outcome: TrainOutcome) -> None:
        """The OHLC variant of a model about to serve: same kind, same candles and split, features
        of open/high/low/close only. A failure is logged and leaves the model without it (POST
        /predict then answers such histories with a 503 saying so); the promotion goes on."""
        job = VariantJob(stream.symbol, stream.interval, candles, self._config(stream.interval),
                         self.settings.model_dir, outcome.kind)
        try:
            variant = await asyncio.get_running_loop().run_in_executor(self.executor, train_variant, job)
            await registry.set_variant(self.pool, outcome.version, "ohlc", variant)
        except Exception as exc:
            log.error("the ohlc variant of %s failed: %s", outcome.version, exc)
            self._renew_if_broken(exc)
            return
        mae = variant["metrics"].get("close_mae")
        persistence = variant["baseline_metrics"].get("persistence", {}).get("close_mae")
        log.info("ohlc variant of %s: %s, close MAE %s (persistence %s)", outcome.version, variant["version"],
                 mae, persistence)

    async def _training_candles(self, stream: Stream) -> pd.DataFrame:
        """The stream's newest `history_candles_of(interval)` candles (all of them for 1d by default)."""
        symbol, interval = stream
        count = self.settings.history_candles_of(interval, training=True)
        days = None if count is None else count * interval_ms(interval) / DAY_MS
        candles = await load_candles(self.pool, symbol, interval, days=days)
        if candles.empty:
            raise ValueError(f"no {symbol} {interval} candles stored")
        return candles

    async def _record(self, stream: Stream, outcome: TrainOutcome) -> None:
        c = outcome.comparison
        metrics = dict(c.candidate)
        metrics.update({"compared_rows": float(c.rows), "train_seconds": outcome.train_seconds,
                        "best_epoch": float(outcome.best_epoch)})
        if c.since_ms is not None:
            metrics["compared_since"] = float(c.since_ms)
        for name in ("train_until", "validation_until"):  # the series' split labels, for a later rebuild
            value = getattr(outcome, name)
            if value is not None:
                metrics[name] = float(value)
        for name, value in (c.champion or {}).items():
            metrics[f"champion_{name}"] = value
        await registry.insert_candidate(
            self.pool,
            registry.ModelRecord(
                version=outcome.version, symbol=stream.symbol, interval=stream.interval,
                artifact_path=outcome.artifact_path, metrics=metrics, baseline_metrics=c.baselines, kind=outcome.kind,
                data_start=outcome.data_start, data_end=outcome.data_end, test_start=outcome.test_start,
            ),
        )

    async def _announce(self, stream: Stream, outcome: TrainOutcome) -> None:
        symbol = stream.symbol
        event = ModelPromoted(
            symbol=symbol,
            interval=stream.interval,
            version=outcome.version,
            artifact_path=outcome.artifact_path,
            metrics={k: v for k, v in outcome.comparison.candidate.items() if k in SCORES},
        )
        await self.broker.publish(event, self.settings.topic(topics.MODELS), key=topics.symbol_key(symbol))

    def _score(self, stream: Stream, outcome: TrainOutcome, keep: set[str]) -> None:
        """Gauges of the latest candidate (and the champion); older versions' gauges are dropped."""
        symbol, interval = stream
        for name in SCORES:
            if name in outcome.comparison.candidate:
                MODEL_SCORE.labels(symbol, interval, outcome.version, name).set(outcome.comparison.candidate[name])
        scored = self._scored.setdefault(stream, set())
        scored.add(outcome.version)
        for version in scored - keep:
            for name in SCORES:
                try:
                    MODEL_SCORE.remove(symbol, interval, version, name)
                except KeyError:
                    pass
        self._scored[stream] = scored & keep

    async def show_champion(self, stream: Stream) -> None:
        """At start: the champion's stored scores as gauges, and every counter at zero, so that
        dashboards show the state from the first scrape rather than "no data" until a training."""
        symbol, interval = stream
        PROMOTIONS.labels(symbol, interval)
        REJECTED.labels(symbol, interval)
        champion = await registry.get_champion(self.pool, symbol, interval)
        if champion is None:
            return
        for name in SCORES:
            if name in champion.metrics:
                MODEL_SCORE.labels(symbol, interval, champion.version, name).set(champion.metrics[name])
        self._scored.setdefault(stream, set()).add(champion.version)

    async def ensure_series(self, stream: Stream) -> bool:
        """Rebuild the champion's series if it is missing (a rebuild interrupted by a stop), unless
        another trainer holds the stream (it rebuilds what it promotes)."""
        async with self.locks.holding(stream) as mine:
            if not mine:
                return False
            champion = await registry.get_champion(self.pool, *stream)
            if champion is None or await store.has_series(self.pool, *stream, champion.version):
                return False
            log.info("the series of %s is missing; rebuilding it", champion.version)
            await self.rebuild(champion)
            return True

    async def rebuild(self, model: registry.ModelRecord, loaded: pd.DataFrame | None = None) -> None:
        """Predictions of the new champion for the stored history (the original `/series/rebuild`).
        `loaded`: candles the run has in memory already, used when they are all the stored ones."""
        symbol, interval = model.symbol, model.interval
        job_id = await store.start_job(self.pool, store.REBUILD_SERIES, symbol, interval, model.version)
        try:
            candles = await self._stored_candles(Stream(symbol, interval), loaded)
            job = SeriesJob(candles, model.artifact_path, model.data_start or 0, _ms(model.metrics.get("train_until")),
                            _ms(model.metrics.get("validation_until")), model.data_end or 0,
                            tuple(self.settings.interval_levels))
            rows = await asyncio.get_running_loop().run_in_executor(self.executor, rebuild_series, job)
            written = await store.write_series(self.pool, symbol, interval, model.version, rows)
        except asyncio.CancelledError:
            await store.finish_job(self.pool, job_id, "failed", "interrupted: the trainer stopped", model.version)
            raise
        except Exception as exc:
            await store.finish_job(self.pool, job_id, "failed", f"{type(exc).__name__}: {exc}", model.version)
            log.error("series rebuild for %s failed: %s", model.version, exc)
            self._renew_if_broken(exc)
            return
        counts = {s: rows.split.count(s) for s in ("train", "validation", "test", "live")}
        message = f"{written} predictions of {model.version}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
        await store.finish_job(self.pool, job_id, "success", message, model.version)
        log.info("series rebuilt: %s", message)

    async def _stored_candles(self, stream: Stream, loaded: pd.DataFrame | None) -> pd.DataFrame:
        """Every stored candle of `stream`: `loaded` when it holds all of them (the same count, first
        and last: open times are unique), which spares reading 90 days of 1m again (0.3 s a run)."""
        if loaded is not None and len(loaded):
            count, first, last = await candle_span(self.pool, *stream)
            times = loaded["open_time"]
            if count == len(loaded) and first == int(times.iloc[0]) and last == int(times.iloc[-1]):
                return loaded
        return await load_candles(self.pool, *stream)

    def _renew_if_broken(self, exc: BaseException) -> None:
        """A dead worker (an OOM kill) breaks its pool for good: without a new one every later run fails at once."""
        if not isinstance(exc, BrokenProcessPool) or not isinstance(self.executor, ProcessPoolExecutor):
            return
        broken, self.executor = self.executor, make_executor()
        shutdown_executor(broken)
        log.warning("the training worker died; a new worker process takes over")


def _ms(value: float | None) -> int | None:
    return None if value is None else int(value)
