"""Model versions with their metrics beside the baselines', data ranges and test period."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, status

from services.gateway import queries
from services.gateway.deps import PoolDep, SettingsDep, SymbolDep
from services.gateway.schemas import Leaderboard, ModelList, ModelOut, Problem
from shared.storage.models_registry import latest_challengers

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


@router.get("/leaderboard", response_model=Leaderboard,
            responses={404: {"model": Problem, "description": "symbol not served"}})
async def leaderboard(
    pool: PoolDep,
    settings: SettingsDep,
    symbol: SymbolDep,
    window: Annotated[int, Query(ge=1, le=100_000, description="last N filled candles per model")] = 288,
) -> dict[str, Any]:
    """The champion and its shadow challengers (the newest model of every other kind), live: each
    scored on its last `window` filled predictions beside persistence on the same rows."""
    champion = await queries.champion(pool, symbol, settings.interval)
    challengers = await latest_challengers(pool, symbol, settings.interval)
    roles = {m.version: ("challenger", m.kind) for m in challengers}
    if champion is not None:
        roles[champion["version"]] = ("champion", champion["kind"])
    rows = await queries.leaderboard(pool, symbol, settings.interval, list(roles), window)
    scored = {r["model_version"]: dict(r) for r in rows}
    items = []
    for version, (role, kind) in roles.items():
        row = scored.get(version, {"rows": 0, "since": None, "until": None, "close_mae": None,
                                   "persistence_mae": None, "direction_hit_rate": None, "coverage_80": None,
                                   "coverage_95": None})
        mae, persistence = row["close_mae"], row["persistence_mae"]
        skill = 1 - mae / persistence if mae is not None and persistence else None
        items.append({**row, "model_version": version, "kind": kind, "role": role, "skill": skill})
    items.sort(key=lambda i: (i["skill"] is None, -(i["skill"] or 0.0)))
    for rank, item in enumerate(items, 1):
        item["rank"] = rank
    return {"symbol": symbol, "interval": settings.interval, "window": window, "items": items}


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
