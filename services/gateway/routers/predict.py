"""`POST /predict`: the next candle(s) after a history the user sends, by the stream's champion.

One URL takes JSON (`PredictRequest`: Binance's kline fields, or just a time and the prices), a
multipart upload (`file`: a Binance archive, a Yahoo Finance download, any CSV whose header
names time, open, high, low and close) or a `text/csv` body, so the body is read by hand and
every shape is declared in the OpenAPI document. `horizon` and `symbol` may come as query
parameters with any of them, or in the body (JSON fields, form fields); given in both, they must
agree. The interval is the history's spacing; the champion answers a history with Binance's
volume and trade fields, its OHLC variant one without (the answer says which).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from starlette.datastructures import UploadFile

from services.gateway.deps import ChampionsDep, SettingsDep, resolve_symbol
from services.gateway.histories import Parsed, frame_of, infer_interval, parse_any_csv
from services.gateway.limits import PredictLimiter, TooBusy
from services.gateway.predicting import PredictResponse, predict
from services.gateway.schemas import Problem
from services.gateway.validation import (
    MAX_HORIZON,
    HistoryInvalid,
    check_history,
    complete,
    parse_json,
    request_rows,
    too_few_candles,
    violation,
)
from shared.config import Settings, interval_ms
from shared.model.champions import ChampionCache
from shared.model.features import required_rows
from shared.model.forecaster import Forecaster

router = APIRouter(tags=["predict"])

#: A history of a few thousand candles is well under 1 MB. Enforced by `security.BodyLimit` on
#: the bytes as they arrive: a larger body is refused with 413 before it is read, let alone parsed.
MAX_BODY_BYTES = 5 * 1024 * 1024

_CSV_FILE = {"type": "string", "format": "binary",
             "description": "a Binance archive CSV, a Yahoo Finance CSV, or any CSV whose header names time "
                            "(open_time, timestamp, date or time), open, high, low, close (volume optional); "
                            "oldest first"}
REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": _CSV_FILE,
                    "horizon": {"type": "integer", "minimum": 1, "maximum": MAX_HORIZON, "default": 1},
                    "symbol": {"type": "string", "maxLength": 20},
                },
            }
        },
        "text/csv": {"schema": {"type": "string", "description": _CSV_FILE["description"]}},
    },
}
PARAMETERS: list[dict[str, Any]] = [
    {"name": "horizon", "in": "query", "required": False,
     "description": "steps ahead (the same as the body's `horizon`; both given, they must agree)",
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_HORIZON}},
    {"name": "symbol", "in": "query", "required": False,
     "description": "the symbol (the same as the body's `symbol`; default: the first configured)",
     "schema": {"type": "string", "maxLength": 20}},
]


@dataclass(frozen=True)
class History:
    """What a request asks: the candles (and their file lines, for an upload), horizon, symbol."""

    parsed: Parsed
    horizon: int
    symbol: str | None


def _horizon(value: Any, where: str) -> int:
    try:
        horizon = int(value)
    except (TypeError, ValueError):
        horizon = 0
    if not 1 <= horizon <= MAX_HORIZON:
        raise HistoryInvalid([violation([where, "horizon"], None, "horizon", f"1 <= horizon <= {MAX_HORIZON}",
                                        f"horizon must be an integer from 1 to {MAX_HORIZON}, got {value!r}")])
    return horizon


def _agree(name: str, query: Any, body: Any) -> Any:
    """A parameter given as a query parameter and in the body must say the same."""
    if query is not None and body is not None and str(query).upper() != str(body).upper():
        raise HistoryInvalid([violation(["query", name], None, "conflict", f"one {name}",
                                        f"{name} is {query!r} in the query but {body!r} in the body")])
    return query if query is not None else body


async def read_history(request: Request) -> History:
    query_horizon = request.query_params.get("horizon")
    horizon_q = _horizon(query_horizon, "query") if query_horizon is not None else None
    symbol_q = request.query_params.get("symbol") or None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=1, max_fields=10) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise HistoryInvalid([violation(["body", "file"], None, "missing", "a `file` part",
                                                "upload the history as a `file` part (a CSV)")])
            parsed = parse_any_csv(await upload.read(), upload.filename or "upload.csv")
            form_horizon = form.get("horizon")
            horizon_f = _horizon(form_horizon, "body") if form_horizon is not None else None
            symbol_f = form.get("symbol")
            symbol_f = symbol_f if isinstance(symbol_f, str) and symbol_f else None
        return History(parsed, _agree("horizon", horizon_q, horizon_f) or 1, _agree("symbol", symbol_q, symbol_f))
    if content_type in ("text/csv", "text/plain"):
        parsed = parse_any_csv(await request.body(), "body.csv")
        return History(parsed, horizon_q or 1, symbol_q)
    if content_type in ("application/json", ""):
        body = parse_json(await request.body())
        horizon_b = body.horizon if "horizon" in body.model_fields_set else None
        parsed = frame_of(request_rows(body), None)
        return History(parsed, _agree("horizon", horizon_q, horizon_b) or 1, _agree("symbol", symbol_q, body.symbol))
    raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
                        "send application/json (PredictRequest), text/csv, or multipart/form-data with a CSV `file`")


@router.post(
    "/predict",
    response_model=PredictResponse,
    openapi_extra={"requestBody": REQUEST_BODY, "parameters": PARAMETERS},
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
        history = await read_history(request)
        symbol = resolve_symbol(settings, history.symbol)
        parsed = history.parsed
        try:
            interval = infer_interval(parsed, settings.intervals)
        except HistoryInvalid as exc:  # a history too short to tell its interval is too short, first
            if len(parsed.frame) < required_rows(settings.window):
                exc.errors.insert(0, too_few_candles(len(parsed.frame), required_rows(settings.window)))
            raise
        step = interval_ms(interval)
        frame = complete(parsed.frame, step)
        check_history(frame, step, required_rows(settings.window), parsed.lines)
        variant: Literal["full", "ohlc"] = "full" if parsed.full else "ohlc"
        model, version, variant_version = await _model(champions, symbol, interval, variant)
        # The model may have been trained with another window than the settings say.
        check_history(frame, int(model.interval_ms), int(model.history_needed), parsed.lines)
    except HistoryInvalid as exc:
        raise RequestValidationError(exc.errors) from None
    steps, first = await asyncio.to_thread(predict, model, frame, history.horizon, tuple(settings.interval_levels))
    return PredictResponse(
        symbol=symbol,
        interval=interval,
        model_version=version,
        variant=variant,
        variant_version=variant_version,
        base_time=int(first.base_time),
        base_close=float(first.base_close),
        next=steps[0],
        steps=steps,
    )


async def _model(champions: ChampionCache, symbol: str, interval: str, variant: str) -> tuple[Forecaster, str, str]:
    """The model that answers: the champion for a full history, its OHLC variant otherwise."""
    if variant == "full":
        champion = await champions.refresh(symbol, interval)
        if champion is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, champions.problem(symbol, interval))
        return champion.model, champion.version, champion.version
    found = await champions.variant(symbol, interval, variant)
    if isinstance(found, str):
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, found)
    version, loaded = found
    return loaded.model, version, loaded.version
