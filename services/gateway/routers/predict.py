"""`POST /predict`: the next candle(s) after a history the user sends, by the champion model.

One URL takes either JSON (`PredictRequest`) or a multipart upload of a Binance archive CSV
(`file`, with `horizon` and `symbol` as form fields), so the body is read by hand and both
shapes are declared in the OpenAPI document.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pandas as pd
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import UploadFile

from services.gateway.deps import ChampionsDep, SettingsDep, resolve_symbol
from services.gateway.limits import PredictLimiter, TooBusy
from services.gateway.predicting import PredictResponse, predict
from services.gateway.schemas import Problem
from services.gateway.validation import (
    MAX_HORIZON,
    HistoryInvalid,
    check_history,
    frame_from_request,
    parse_csv,
    parse_json,
    violation,
)
from shared.config import Settings
from shared.model.champions import ChampionCache
from shared.model.features import required_rows

router = APIRouter(tags=["predict"])

#: A history of a few thousand candles is well under 1 MB. Enforced by `security.BodyLimit` on
#: the bytes as they arrive: a larger body is refused with 413 before it is read, let alone parsed.
MAX_BODY_BYTES = 5 * 1024 * 1024

REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "Binance archive CSV, oldest first"},
                    "horizon": {"type": "integer", "minimum": 1, "maximum": MAX_HORIZON, "default": 1},
                    "symbol": {"type": "string", "maxLength": 20},
                },
            }
        },
    },
}


@dataclass(frozen=True)
class History:
    """What a request asks: candles (and their file lines, for an upload), horizon, symbol."""

    frame: pd.DataFrame
    lines: list[int] | None
    horizon: int
    symbol: str | None


def _form_horizon(value: Any) -> int:
    try:
        horizon = int(value)
    except (TypeError, ValueError):
        horizon = 0
    if not 1 <= horizon <= MAX_HORIZON:
        raise HistoryInvalid([violation(["body", "horizon"], None, "horizon", f"1 <= horizon <= {MAX_HORIZON}",
                                        f"horizon must be an integer from 1 to {MAX_HORIZON}, got {value!r}")])
    return horizon


async def read_history(request: Request, interval_ms: int) -> History:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HistoryInvalid([violation(["body", "file"], None, "missing", "a `file` part",
                                                "upload the history as a `file` part (Binance archive CSV)")])
            data = await upload.read()
            frame, lines = parse_csv(data, upload.filename or "upload.csv")
            symbol = form.get("symbol")
            return History(frame, lines, _form_horizon(form.get("horizon", 1)),
                           symbol if isinstance(symbol, str) and symbol else None)
    if content_type in ("application/json", ""):
        body = await request.body()
        parsed = parse_json(body)
        return History(frame_from_request(parsed, interval_ms), None, parsed.horizon, parsed.symbol)
    raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                        "send application/json (PredictRequest) or multipart/form-data with a CSV `file`")


@router.post(
    "/predict",
    response_model=PredictResponse,
    openapi_extra={"requestBody": REQUEST_BODY},
    responses={
        404: {"model": Problem, "description": "symbol not served"},
        413: {"model": Problem, "description": f"body larger than {MAX_BODY_BYTES} bytes"},
        415: {"model": Problem, "description": "neither JSON nor a multipart upload"},
        422: {
            "description": "the history breaks a rule: one entry per violation, naming `row` and `rule`",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
        },
        429: {"model": Problem, "description": "too many predictions at once, or from this client: see Retry-After"},
        503: {"model": Problem, "description": "no model can answer yet"},
    },
)
async def predict_next(request: Request, settings: SettingsDep, champions: ChampionsDep) -> PredictResponse:
    """The next candle, `p_up`, and optionally `horizon` steps ahead (each step fed back).

    The history must have enough candles for the model's window and feature lookback, times
    ascending and one interval apart, high >= max(open, close), low <= min(open, close), no NaN
    and no negative volume: every violation is a 422 naming the row and the rule. At most
    `predict_max_concurrent` run at once and `predict_rate_per_client` a second per client: beyond,
    a 429 with `Retry-After`.
    """
    limiter: PredictLimiter = request.app.state.predict_limiter
    client = request.client.host if request.client else "unknown"
    try:
        limiter.acquire(client)
    except TooBusy as exc:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, exc.reason,
                            headers={"Retry-After": str(exc.retry_after)}) from None
    try:
        return await _predict_next(request, settings, champions)
    finally:
        limiter.release()


async def _predict_next(request: Request, settings: Settings, champions: ChampionCache) -> PredictResponse:
    try:
        history = await read_history(request, settings.interval_ms)
        symbol = resolve_symbol(settings, history.symbol)
        check_history(history.frame, settings.interval_ms, required_rows(settings.window), history.lines)
        champion = await champions.refresh(symbol, settings.interval)
        if champion is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, champions.problem(symbol, settings.interval))
        loaded = champion.model
        # The model may have been trained with another window than the settings say.
        check_history(history.frame, int(loaded.interval_ms), int(loaded.history_needed), history.lines)
    except HistoryInvalid as exc:
        raise RequestValidationError(exc.errors) from None
    steps, first = await asyncio.to_thread(predict, loaded, history.frame, history.horizon,
                                           tuple(settings.interval_levels))
    return PredictResponse(
        symbol=symbol,
        interval=settings.interval,
        model_version=str(loaded.version),
        base_time=int(first.base_time),
        base_close=float(first.base_close),
        next=steps[0],
        steps=steps,
    )
