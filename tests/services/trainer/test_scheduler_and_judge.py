"""Coalescing, the promotion rule, the training config (pure: no Kafka, no database, no training)."""

from __future__ import annotations

import asyncio

import pytest

from services.trainer.jobs import Comparison, TrainOutcome
from services.trainer.runner import Trainer, judge
from services.trainer.scheduler import TrainingScheduler
from shared.config import Settings
from shared.market.streams import Stream

BTC, ETH = Stream("BTCUSDT", "5m"), Stream("ETHUSDT", "5m")


async def test_triggers_during_a_run_become_exactly_one_more_run() -> None:
    runs: list[tuple[Stream, list[str]]] = []
    release = asyncio.Event()

    async def run(symbol: Stream, reasons: list[str], requested_ms: int) -> None:
        runs.append((symbol, reasons))
        if len(runs) == 1:
            await release.wait()

    scheduler = TrainingScheduler(run)
    assert scheduler.request(BTC, "tick") is True
    await asyncio.sleep(0)
    assert scheduler.busy(BTC) and scheduler.running_since(BTC) is not None
    assert scheduler.request(BTC, "drift") is False
    assert scheduler.request(BTC, "manual") is False
    assert scheduler.request(ETH, "tick") is True  # another symbol does not wait
    release.set()
    await scheduler.idle()
    assert runs == [(BTC, ["tick"]), (ETH, ["tick"]), (BTC, ["drift", "manual"])]
    assert not scheduler.busy(BTC) and scheduler.running_since(BTC) is None


async def test_a_failed_run_does_not_lose_the_triggers_that_waited_for_it() -> None:
    runs: list[list[str]] = []
    gate = asyncio.Event()

    async def run(symbol: Stream, reasons: list[str], requested_ms: int) -> None:
        runs.append(reasons)
        if len(runs) == 1:
            await gate.wait()
            raise RuntimeError("out of memory")

    scheduler = TrainingScheduler(run)
    scheduler.request(BTC, "first")
    await asyncio.sleep(0)
    scheduler.request(BTC, "second")
    gate.set()
    await scheduler.idle()
    assert runs == [["first"], ["second"]]


async def test_close_cancels_a_run_in_progress() -> None:
    cancelled = asyncio.Event()

    async def run(symbol: Stream, reasons: list[str], requested_ms: int) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    scheduler = TrainingScheduler(run)
    scheduler.request(BTC, "tick")
    await asyncio.sleep(0)
    await scheduler.close()
    assert cancelled.is_set() and not scheduler.busy(BTC)


def outcome(candidate: float | None, champion: float | None) -> TrainOutcome:
    comparison = Comparison(
        rows=100,
        since_ms=123,
        candidate={} if candidate is None else {"close_mae": candidate},
        champion=None if champion is None else {"close_mae": champion},
        baselines={"persistence": {"close_mae": 10.0}},
    )
    return TrainOutcome("new", "/m/new", 0, 1, 1, comparison, None, None, 1.0, 1)


def test_the_candidate_must_beat_the_champion_on_the_same_rows() -> None:
    better = judge(outcome(9.0, 9.5), "old")
    assert better.promote and "close MAE 9.0000 vs champion old 9.5000 on 100 rows" in better.message
    assert "persistence 10.0000" in better.message
    worse = judge(outcome(9.5, 9.0), "old")
    assert not worse.promote and "rejected" in worse.message and "champion old stays" in worse.message
    assert not judge(outcome(9.0, 9.0), "old").promote  # a tie keeps the model that already serves


def test_without_a_champion_the_first_model_is_promoted() -> None:
    verdict = judge(outcome(9.0, None), None)
    assert verdict.promote and "no champion to beat" in verdict.message


def test_train_config_comes_from_the_settings_and_a_typo_is_refused() -> None:
    settings = Settings(train_config={"epochs": 2, "units": 8}, window=30)
    trainer = Trainer(settings, None, None, None)  # type: ignore[arg-type]
    assert (trainer.config.epochs, trainer.config.units, trainer.config.window) == (2, 8, 30)
    assert trainer.config.interval_ms == settings.interval_ms
    with pytest.raises(ValueError, match="epoch"):
        Trainer(Settings(train_config={"epoch": 2}), None, None, None)  # type: ignore[arg-type]
