"""Two `up`s at once (two shells, two test workers) take turns: the second finds the first's server."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from shared.infra.process import one_at_a_time


def _hold(lock: Path, log: Path, seconds: float) -> None:
    with one_at_a_time(lock):
        with log.open("a") as out:
            out.write(f"in {time.monotonic()}\n")
        time.sleep(seconds)
        with log.open("a") as out:
            out.write(f"out {time.monotonic()}\n")


def test_one_at_a_time_lets_one_process_in_and_the_other_waits(tmp_path: Path) -> None:
    lock, log = tmp_path / "run" / "kafka.lock", tmp_path / "log"
    context = multiprocessing.get_context("spawn")
    holders = [context.Process(target=_hold, args=(lock, log, 0.5)) for _ in range(2)]
    for holder in holders:
        holder.start()
    for holder in holders:
        holder.join(30)
        assert holder.exitcode == 0
    steps = [line.split() for line in log.read_text().splitlines()]
    assert [kind for kind, _ in steps] == ["in", "out", "in", "out"]  # never two inside at once
    assert float(steps[2][1]) >= float(steps[1][1])
