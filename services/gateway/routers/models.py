"""Model versions with their metrics beside the baselines', data ranges and test period."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status

from services.gateway import queries
from services.gateway.deps import PoolDep, SettingsDep, SymbolDep
from services.gateway.schemas import ModelList, ModelOut, Problem

router = APIRouter(prefix="/models", tags=["models"])

Status = Literal["candidate", "champion", "retired", "rejected"]


@router.get("", response_model=ModelList, responses={404: {"model": Problem, "description": "symbol not served"}})
async def list_models(
    pool: PoolDep,
    settings: SettingsDep,
    symbol: SymbolDep,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Newest first."""
    items = await queries.models(pool, symbol, settings.interval, status_, limit)
    return {"symbol": symbol, "interval": settings.interval, "items": items}


@router.get(
    "/current",
    response_model=ModelOut,
    responses={404: {"model": Problem, "description": "no champion yet, or symbol not served"}},
)
async def current_model(pool: PoolDep, settings: SettingsDep, symbol: SymbolDep) -> dict[str, Any]:
    """The champion: the model the predictor serves. `test_start` starts the shaded test period."""
    model = await queries.champion(pool, symbol, settings.interval)
    if model is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model for {symbol} {settings.interval} yet")
    return model
