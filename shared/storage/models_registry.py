"""The `models` table: candidates, the champion, and the ones retired or rejected.

The trainer inserts a candidate, then promotes or rejects it; the predictor and the gateway read
the champion. Promotion retires the previous champion in the same transaction, under a lock
per symbol and interval, so readers never see two champions or none between the two updates
(the unique index `models_one_champion` would refuse two anyway).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

Db: TypeAlias = "asyncpg.Connection | asyncpg.Pool"

CANDIDATE = "candidate"
CHAMPION = "champion"
RETIRED = "retired"
REJECTED = "rejected"


@dataclass(frozen=True)
class ModelRecord:
    """One row of `models`."""

    version: str
    symbol: str
    interval: str
    artifact_path: str
    status: str = CANDIDATE
    kind: str = "lstm"
    metrics: dict[str, float] = field(default_factory=dict)
    baseline_metrics: dict[str, Any] = field(default_factory=dict)
    data_start: int | None = None
    data_end: int | None = None
    test_start: int | None = None
    created_at: datetime | None = None
    promoted_at: datetime | None = None
    #: Variants trained beside the model on the same rows, by name (see `set_variant`).
    variants: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> ModelRecord:
        return cls(
            version=row["version"],
            symbol=row["symbol"],
            interval=row["interval"],
            artifact_path=row["artifact_path"],
            status=row["status"],
            kind=row["kind"],
            metrics=json.loads(row["metrics"]),
            baseline_metrics=json.loads(row["baseline_metrics"]),
            data_start=row["data_start"],
            data_end=row["data_end"],
            test_start=row["test_start"],
            created_at=row["created_at"],
            promoted_at=row["promoted_at"],
            variants=json.loads(row["variants"]),
        )


def _json(value: Any) -> str:
    """jsonb has no NaN or infinity: non-finite numbers are left out rather than refused."""

    def clean(item: Any) -> Any:
        if isinstance(item, dict):
            return {str(k): clean(v) for k, v in item.items() if not _non_finite(v)}
        if isinstance(item, list | tuple):
            return [clean(v) for v in item]
        return item

    return json.dumps(clean(value), allow_nan=False)


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


async def insert_candidate(db: Db, record: ModelRecord) -> None:
    """Record a freshly trained model; inserting the same version twice is a no-op."""
    await db.execute(
        """INSERT INTO models (version, symbol, interval, artifact_path, status, metrics, baseline_metrics,
                               data_start, data_end, test_start, kind)
           VALUES ($1, $2, $3, $4, 'candidate', $5::jsonb, $6::jsonb, $7, $8, $9, $10)
           ON CONFLICT (version) DO NOTHING""",
        record.version,
        record.symbol,
        record.interval,
        record.artifact_path,
        _json(record.metrics),
        _json(record.baseline_metrics),
        record.data_start,
        record.data_end,
        record.test_start,
        record.kind,
    )


async def promote(db: Db, version: str) -> ModelRecord:
    """Make `version` the champion of its symbol and interval, retiring the previous one."""
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            return await promote(conn, version)
    async with db.transaction():
        row = await db.fetchrow("SELECT symbol, interval FROM models WHERE version = $1", version)
        if row is None:
            raise LookupError(f"no model {version!r}")
        await db.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"models:{row['symbol']}:{row['interval']}")
        await db.execute(
            "UPDATE models SET status = 'retired' WHERE symbol = $1 AND interval = $2 AND status = 'champion' "
            "AND version <> $3",
            row["symbol"],
            row["interval"],
            version,
        )
        promoted = await db.fetchrow(
            "UPDATE models SET status = 'champion', promoted_at = COALESCE(promoted_at, now()) "
            "WHERE version = $1 RETURNING *",
            version,
        )
    return ModelRecord.from_row(promoted)


async def reject(db: Db, version: str) -> None:
    """A candidate that lost against the champion: kept for the record, never served."""
    await db.execute("UPDATE models SET status = 'rejected' WHERE version = $1 AND status = 'candidate'", version)


async def update_metrics(
    db: Db, version: str, metrics: dict[str, float], baseline_metrics: dict[str, Any] | None = None
) -> None:
    """Replace a model's metrics (e.g. with those of the candidate-versus-champion comparison)."""
    await db.execute(
        "UPDATE models SET metrics = $2::jsonb, baseline_metrics = COALESCE($3::jsonb, baseline_metrics) "
        "WHERE version = $1",
        version,
        _json(metrics),
        None if baseline_metrics is None else _json(baseline_metrics),
    )


async def set_variant(db: Db, version: str, name: str, variant: dict[str, Any]) -> None:
    """Record a variant of `version` (e.g. "ohlc": version, artifact_path, kind, metrics)."""
    await db.execute("UPDATE models SET variants = variants || jsonb_build_object($2::text, $3::jsonb) "
                     "WHERE version = $1", version, name, _json(variant))


async def get_champion(db: Db, symbol: str, interval: str) -> ModelRecord | None:
    row = await db.fetchrow(
        "SELECT * FROM models WHERE symbol = $1 AND interval = $2 AND status = 'champion'", symbol, interval
    )
    return None if row is None else ModelRecord.from_row(row)


async def get_model(db: Db, version: str) -> ModelRecord | None:
    row = await db.fetchrow("SELECT * FROM models WHERE version = $1", version)
    return None if row is None else ModelRecord.from_row(row)


async def list_models(db: Db, symbol: str, interval: str, limit: int = 50) -> list[ModelRecord]:
    """Newest first."""
    rows = await db.fetch(
        "SELECT * FROM models WHERE symbol = $1 AND interval = $2 ORDER BY created_at DESC, version DESC LIMIT $3",
        symbol,
        interval,
        limit,
    )
    return [ModelRecord.from_row(r) for r in rows]


async def latest_challengers(db: Db, symbol: str, interval: str) -> list[ModelRecord]:
    """The shadows: the newest model of every kind but the champion's, and every candidate waiting
    for live evidence (`promote_requires_live`), whatever its kind."""
    rows = await db.fetch(
        """SELECT * FROM (
               SELECT DISTINCT ON (kind) * FROM models
               WHERE symbol = $1 AND interval = $2 AND status IN ('candidate', 'rejected')
                 AND kind <> COALESCE((SELECT kind FROM models
                                       WHERE symbol = $1 AND interval = $2 AND status = 'champion'), '')
               ORDER BY kind, created_at DESC, version DESC
           ) AS other_kinds
           UNION
           SELECT * FROM models WHERE symbol = $1 AND interval = $2 AND status = 'candidate'
           ORDER BY created_at DESC, version DESC""",
        symbol,
        interval,
    )
    return [ModelRecord.from_row(r) for r in rows]


async def pending_candidates(db: Db, symbol: str, interval: str) -> list[ModelRecord]:
    """Candidates neither promoted nor rejected: waiting for live evidence."""
    rows = await db.fetch(
        "SELECT * FROM models WHERE symbol = $1 AND interval = $2 AND status = 'candidate' ORDER BY created_at",
        symbol,
        interval,
    )
    return [ModelRecord.from_row(r) for r in rows]
