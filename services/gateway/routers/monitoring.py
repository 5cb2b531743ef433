"""What the system did on its own: drift events and job logs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from services.gateway import queries
from services.gateway.deps import IntervalDep, PagingDep, PoolDep, SettingsDep, SymbolDep
from services.gateway.schemas import DriftPage, JobPage, Problem

router = APIRouter(tags=["monitoring"])


@router.get("/drift", response_model=DriftPage, responses={404: {"model": Problem, "description": "symbol not served"}})
async def drift(
    pool: PoolDep,
    settings: SettingsDep,
    symbol: SymbolDep,
    interval: IntervalDep,
    paging: PagingDep,
) -> dict[str, Any]:
    """Drift events, paged by `detected_at` (epoch ms)."""
    rows = await queries.drift(pool, symbol, interval, paging)
    return {
        "symbol": symbol,
        "interval": interval,
        "count": len(rows),
        **paging.cursors([r["detected_at"] for r in rows]),
        "items": [dict(r) for r in rows],
    }


@router.get("/jobs", response_model=JobPage)
async def jobs(
    pool: PoolDep,
    paging: PagingDep,
    job: Annotated[str | None, Query(max_length=200, description="only this job name")] = None,
    status: Literal["running", "success", "failed", "rejected"] | None = None,
) -> dict[str, Any]:
    """Job logs (training runs and other jobs), paged by `started_at` (epoch ms).

    Job logs carry no symbol column; the job name tells what ran.
    """
    rows = await queries.jobs(pool, job, status, paging)
    return {"count": len(rows), **paging.cursors([r["started_at"] for r in rows]), "items": [dict(r) for r in rows]}
