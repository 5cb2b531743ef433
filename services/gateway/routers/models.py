"""Model versions with their metrics beside the baselines', data ranges and test period."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status

from services.gateway import queries
from services.gateway.deps import IntervalDep, PoolDep, SettingsDep, SymbolDep
from services.gateway.schemas import Leaderboard, ModelCard, ModelList, ModelOut, Problem
from shared.model.intervals import LEVELS, Conformal
from shared.storage.models_registry import latest_challengers

router = APIRouter(prefix="/models", tags=["models"])

Status = Literal["candidate", "champion", "retired", "rejected"]


@router.get("", response_model=ModelList, responses={404: {"model": Problem, "description": "symbol not served"}})
async def list_models(
    pool: PoolDep,
    settings: SettingsDep,
    symbol: SymbolDep,
    interval: IntervalDep,
    status_: Annotated[Status | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Newest first."""
    items = await queries.models(pool, symbol, interval, status_, limit)
    return {"symbol": symbol, "interval": interval, "items": items}


@router.get("/leaderboard", response_model=Leaderboard,
            responses={404: {"model": Problem, "description": "symbol not served"}})
async def leaderboard(
    pool: PoolDep,
    settings: SettingsDep,
    symbol: SymbolDep,
    interval: IntervalDep,
    window: Annotated[int, Query(ge=1, le=100_000, description="last N filled candles per model")] = 288,
) -> dict[str, Any]:
    """The champion and its shadow challengers (the newest model of every other kind), live: each
    scored on its last `window` filled predictions beside persistence on the same rows."""
    champion = await queries.champion(pool, symbol, interval)
    challengers = await latest_challengers(pool, symbol, interval)
    roles = {m.version: ("challenger", m.kind) for m in challengers}
    if champion is not None:
        roles[champion["version"]] = ("champion", champion["kind"])
    rows = await queries.leaderboard(pool, symbol, interval, list(roles), window)
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
    return {"symbol": symbol, "interval": interval, "window": window, "items": items}


@router.get(
    "/current",
    response_model=ModelOut,
    responses={404: {"model": Problem, "description": "no champion yet, or symbol not served"}},
)
async def current_model(
    pool: PoolDep,
    settings: SettingsDep,
    symbol: SymbolDep,
    interval: IntervalDep,
) -> dict[str, Any]:
    """The champion: the model the predictor serves. `test_start` starts the shaded test period."""
    model = await queries.champion(pool, symbol, interval)
    if model is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model for {symbol} {interval} yet")
    return model


# After every fixed path ("/current", "/leaderboard"): "/{version}" would capture them.
@router.get("/{version}", response_model=ModelCard,
            responses={404: {"model": Problem, "description": "no such model for the symbol"}})
async def model_card(pool: PoolDep, settings: SettingsDep, symbol: SymbolDep, interval: IntervalDep,
                     version: Annotated[str, Path(max_length=200)]) -> dict[str, Any]:
    """One model: its metrics beside the baselines, and from its artifact the permutation feature
    importance on the test part, the training configuration and the interval calibration."""
    model = await queries.model(pool, symbol, interval, version)
    if model is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no model {version} for {symbol} {interval}")
    row = await pool.fetchrow("SELECT artifact_path FROM models WHERE version = $1", version)
    card = read_card(settings.model_dir, row["artifact_path"]) if row else {}
    return {**model, **card}


def read_card(model_dir: Any, artifact_path: str) -> dict[str, Any]:
    """What the artifact's metadata says beyond the table (empty when its files are gone)."""
    from pathlib import Path as FilePath

    folder = FilePath(artifact_path)
    folder = folder if folder.is_absolute() else FilePath(model_dir) / folder
    try:
        metadata = json.loads((folder / "metadata.json").read_text())
        preprocessing = json.loads((folder / "preprocessing.json").read_text())
    except (OSError, ValueError):
        return {}
    calibration = None
    if preprocessing.get("conformal"):
        conformal = Conformal.from_dict(preprocessing["conformal"])
        calibration = {"rows": conformal.samples,
                       **{f"close_multiplier_{round(level * 100)}": conformal.multiplier("close", level)
                          for level in LEVELS}}
    return {"feature_importance": metadata.get("feature_importance"), "config": metadata.get("config"),
            "interval_calibration": calibration}
