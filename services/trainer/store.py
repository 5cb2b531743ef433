"""The trainer's SQL: `job_logs` rows of its runs, and the `series` of the champion."""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

import asyncpg

from services.trainer.jobs import SeriesRows

Db: TypeAlias = "asyncpg.Connection | asyncpg.Pool"

TRAIN = "train"
REBUILD_SERIES = "rebuild-series"

_SERIES_COLUMNS = ("time", "pred_open", "pred_high", "pred_low", "pred_close", "pred_amplitude", "p_up", "split",
                   "intervals")


async def start_job(db: Db, job_name: str, symbol: str, interval: str, message: str = "") -> int:
    job_id = await db.fetchval(
        "INSERT INTO job_logs (job_name, status, message, symbol, interval) VALUES ($1, 'running', $2, $3, $4) "
        "RETURNING id",
        job_name,
        message,
        symbol,
        interval,
    )
    return int(job_id)


async def finish_job(db: Db, job_id: int, status: str, message: str, model_version: str | None = None) -> None:
    await db.execute(
        "UPDATE job_logs SET status = $2, message = $3, model_version = COALESCE($4, model_version), "
        "finished_at = now() WHERE id = $1",
        job_id,
        status,
        message,
        model_version,
    )


async def running_jobs(db: Db) -> list[asyncpg.Record]:
    """Rows left `running`: by a trainer that died, or by one that is training now."""
    return await db.fetch("SELECT id, job_name, symbol, interval FROM job_logs WHERE status = 'running' ORDER BY id")


async def close_interrupted(db: Db, ids: list[int]) -> None:
    """Mark runs a dead trainer left `running` as failed."""
    await db.execute(
        "UPDATE job_logs SET status = 'failed', finished_at = now(), "
        "message = message || CASE WHEN message = '' THEN '' ELSE '; ' END || 'interrupted: the trainer stopped' "
        "WHERE id = ANY($1::bigint[]) AND status = 'running'",
        ids,
    )


async def run_started_after(db: Db, symbol: str, interval: str, at_ms: int) -> datetime | None:
    """When the latest training run of `symbol` started (whatever its outcome), if after `at_ms`:
    a trigger of that time is served by it."""
    value: datetime | None = await db.fetchval(
        "SELECT max(started_at) FROM job_logs WHERE job_name = $1 AND symbol = $2 AND interval = $3",
        TRAIN,
        symbol,
        interval,
    )
    return value if value is not None and value.timestamp() * 1000 > at_ms else None


async def has_series(db: Db, symbol: str, interval: str, version: str) -> bool:
    return bool(await db.fetchval(
        "SELECT EXISTS (SELECT 1 FROM series WHERE symbol = $1 AND interval = $2 AND model_version = $3)",
        symbol, interval, version,
    ))


async def write_series(db: Db, symbol: str, interval: str, version: str, rows: SeriesRows) -> int:
    """Replace the stored series with `version`'s: charts show the champion against the real candles."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await write_series(conn, symbol, interval, version, rows)
    records = [(symbol, interval, version, *r) for r in rows.records()]
    async with db.transaction():
        await db.execute("DELETE FROM series WHERE symbol = $1 AND interval = $2", symbol, interval)
        await db.copy_records_to_table(
            "series", records=records, columns=["symbol", "interval", "model_version", *_SERIES_COLUMNS]
        )
    return len(records)


async def live_evidence(db: Db, symbol: str, interval: str, candidate: str, champion: str,
                        limit: int = 1_000_000) -> tuple[int, float, float]:
    """(rows, candidate close MAE, champion close MAE) on the newest candles both predicted live and
    that closed: the candidate's shadow rows joined with the champion's served rows."""
    row = await db.fetchrow(
        """SELECT count(*) AS n, avg(abs(s.real_close - s.pred_close)) AS mine,
                  avg(abs(f.real_close - f.pred_close)) AS theirs
           FROM (SELECT s.* FROM shadow_futures s
                 JOIN futures f ON f.symbol = s.symbol AND f.interval = s.interval AND f.time = s.time
                 WHERE s.symbol = $1 AND s.interval = $2 AND s.model_version = $3 AND f.model_version = $4
                   AND s.real_close IS NOT NULL AND f.real_close IS NOT NULL
                 ORDER BY s.time DESC LIMIT $5) s
           JOIN futures f ON f.symbol = s.symbol AND f.interval = s.interval AND f.time = s.time""",
        symbol,
        interval,
        candidate,
        champion,
        limit,
    )
    assert row is not None
    return int(row["n"]), float(row["mine"] or 0.0), float(row["theirs"] or 0.0)
