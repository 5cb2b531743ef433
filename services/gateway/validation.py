"""Checks of a user's candle history before `POST /predict` feeds it to the model.

A model fed a gap, a reversed row or a NaN answers with a confident wrong number, so every
broken rule is reported instead, each naming the row (1-based; for an upload, the file's line)
and the rule, all at once, in FastAPI's own 422 shape (`loc`, `msg`, `type`) plus `row` and
`rule`, so that a client fixes everything in one round.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.market.binance_csv import COLUMNS, CsvFormatError, parse_archive_csv

MAX_HORIZON = 48
MAX_CANDLES = 10_000
MAX_REPORTED = 50  # violations listed in one answer; the first ones are the useful ones
MAX_TIME = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z in epoch ms: past any candle, within int64
MAX_COUNT = 2**53  # trades: any real count, and still an exact float and an int64

PRICES = ("open", "high", "low", "close")
AMOUNTS = ("volume", "quote_volume", "taker_buy_base_volume", "taker_buy_quote_volume", "trades")


def parse_time(value: Any) -> int:
    """Epoch ms from epoch s / ms / µs (told apart by size) or an ISO date or date-time."""
    if isinstance(value, bool):
        raise ValueError("a time, not a boolean")
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        number = int(float(value))
        if number < 0:
            raise ValueError("a time before 1970")
        if number < 100_000_000_000:  # before 5138 in seconds, before 1973 in ms: seconds
            number *= 1000
        elif number > 100_000_000_000_000:  # microseconds (Binance's archives since 2025)
            number //= 1000
        if number > MAX_TIME:
            raise ValueError("a time after 9999")
        return number
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is neither epoch ms nor an ISO date/time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    raise ValueError(f"{value!r} is neither epoch ms nor an ISO date/time")


class HistoryCandle(BaseModel):
    """One candle of history: a time and the prices; volume and Binance's kline fields optional.

    A history with `volume`, `trades` and `taker_buy_base_volume` on every candle is answered by
    the champion; one without by its OHLC variant (the answer's `variant` says which).
    """

    model_config = ConfigDict(extra="forbid")

    time: int | str | None = Field(
        default=None, description="open time: epoch ms (or s, or µs), or an ISO date/time (UTC unless it says)")
    open_time: int | None = Field(default=None, ge=0, le=MAX_TIME, description="epoch ms (Binance's name for `time`)")
    open: float
    high: float
    low: float
    close: float
    volume: float | None = None
    trades: int | None = Field(default=None, ge=-MAX_COUNT, le=MAX_COUNT)  # a negative count: check_history
    taker_buy_base_volume: float | None = None
    close_time: int | None = Field(default=None, ge=0, le=MAX_TIME, description="default: open_time + interval - 1")
    quote_volume: float | None = Field(default=None, description="default: volume * close")
    taker_buy_quote_volume: float | None = Field(default=None, description="default: taker_buy_base_volume * close")

    @model_validator(mode="after")
    def _one_time(self) -> HistoryCandle:
        if (self.time is None) == (self.open_time is None):
            raise ValueError("give the open time as `time` or as `open_time` (one of them)")
        if self.time is not None:
            self.open_time = parse_time(self.time)
        return self


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbol: str | None = Field(default=None, max_length=20, description="default: the first configured symbol")
    horizon: int = Field(default=1, ge=1, le=MAX_HORIZON, description="steps ahead, each predicted candle fed back")
    candles: list[HistoryCandle] = Field(max_length=MAX_CANDLES, description="oldest first")


class HistoryInvalid(Exception):
    """The history breaks rules; `errors` are FastAPI-style error dicts."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(errors)} problem(s) in the history")
        self.errors = errors


def violation(loc: Sequence[str | int], row: int | None, rule_id: str, rule: str, msg: str) -> dict[str, Any]:
    where = f"row {row}: " if row is not None else ""
    return {"loc": list(loc), "msg": where + msg, "type": rule_id, "row": row, "rule": rule}


def from_pydantic(exc: ValidationError) -> HistoryInvalid:
    """Pydantic's errors with the row named: `candles.3.high` is row 4."""
    errors = []
    for err in exc.errors()[:MAX_REPORTED]:
        loc = list(err["loc"])
        row = loc[1] + 1 if len(loc) >= 2 and loc[0] == "candles" and isinstance(loc[1], int) else None
        field = str(loc[-1]) if loc else "body"
        errors.append(violation(["body", *loc], row, err["type"], f"{field}: {err['msg']}", f"{field}: {err['msg']}"))
    return HistoryInvalid(errors)


def parse_json(body: bytes) -> PredictRequest:
    try:
        return PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        raise from_pydantic(exc) from None


def request_rows(request: PredictRequest) -> list[dict[str, Any]]:
    """The request's candles as rows of the columns they give (`histories.frame_of` makes the frame)."""
    fields = ("open", "high", "low", "close", "volume", "trades", "taker_buy_base_volume", "close_time",
              "quote_volume", "taker_buy_quote_volume")
    return [{"open_time": c.open_time, **{name: getattr(c, name) for name in fields}} for c in request.candles]


def complete(frame: pd.DataFrame, interval_ms: int) -> pd.DataFrame:
    """The history with every column a model may read: close times from the interval, and for a
    full history the quote volumes Binance derives (volume x close) where not given."""
    frame = frame.copy()
    if "close_time" not in frame:
        frame["close_time"] = frame["open_time"] + interval_ms - 1
    if "volume" in frame and "quote_volume" not in frame:
        frame["quote_volume"] = frame["volume"] * frame["close"]
    if "taker_buy_base_volume" in frame and "taker_buy_quote_volume" not in frame:
        frame["taker_buy_quote_volume"] = frame["taker_buy_base_volume"] * frame["close"]
    order = [name for name in COLUMNS if name in frame]
    return frame.loc[:, order]


def parse_csv(data: bytes, filename: str) -> tuple[pd.DataFrame, list[int]]:
    """An upload in Binance's archive format, and the file line of each row.

    A broken line is a 422 naming that line (the reader stops at the first one).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HistoryInvalid(
            [violation(["body", "file"], None, "utf8", "the file is UTF-8 text", f"not UTF-8 text ({exc.reason})")]
        ) from None
    try:
        frame = parse_archive_csv(text, filename)
    except CsvFormatError as exc:
        error = violation(["body", "file", exc.line], exc.line, "csv_format", exc.rule, str(exc))
        raise HistoryInvalid([error]) from None
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    return frame, lines[len(lines) - len(frame) :]  # a header, when there is one, is the first line


def too_few_candles(count: int, min_rows: int) -> dict[str, Any]:
    return violation(["body", "candles"], None, "too_few_candles", f"at least {min_rows} candles",
                     f"need at least {min_rows} candles (the model's window plus its feature lookback), got {count}")


def check_history(frame: pd.DataFrame, interval_ms: int, min_rows: int, lines: Sequence[int] | None = None) -> None:
    """Every rule the model's input must satisfy; raises `HistoryInvalid` listing each broken one.

    `lines` are the file lines of an upload's rows; without them, rows are numbered from 1.
    """
    errors: list[dict[str, Any]] = []

    def flag(mask: np.ndarray, field: str, rule_id: str, rule: str, msg: str) -> None:
        for i in np.flatnonzero(mask)[: MAX_REPORTED - len(errors)]:
            index = int(i)
            if lines is None:
                errors.append(violation(["body", "candles", index, field], index + 1, rule_id, rule, msg))
            else:
                errors.append(violation(["body", "file", lines[index], field], lines[index], rule_id, rule, msg))

    values = {name: frame[name].to_numpy(np.float64) for name in (*PRICES, *AMOUNTS) if name in frame}
    for name, column in values.items():
        flag(~np.isfinite(column), name, "not_finite", f"{name} is a finite number", f"{name} is NaN or infinite")
    with np.errstate(invalid="ignore"):
        o, h, low, c = (values[name] for name in PRICES)
        flag(np.minimum.reduce([o, h, low, c]) <= 0, "low", "price_not_positive", "prices > 0",
             "prices must be positive")
        flag(h < np.maximum(o, c), "high", "high_below_open_close", "high >= max(open, close)",
             "high must be >= max(open, close)")
        flag(low > np.minimum(o, c), "low", "low_above_open_close", "low <= min(open, close)",
             "low must be <= min(open, close)")
        for name in (a for a in AMOUNTS if a in values):
            flag(values[name] < 0, name, "negative_volume", f"{name} >= 0", f"{name} must not be negative")

    times = frame["open_time"].to_numpy(np.int64)
    steps = np.diff(times)
    backwards = np.concatenate([[False], steps <= 0])
    flag(backwards, "open_time", "not_ascending", "open_time ascending",
         "open_time must be after the previous row's (oldest first, no duplicates)")
    uneven = np.concatenate([[False], (steps > 0) & (steps != interval_ms)])
    flag(uneven, "open_time", "not_evenly_spaced", f"open_time steps of {interval_ms} ms",
         f"open_time must be {interval_ms} ms after the previous row's (a gap or an off-grid time)")

    if len(frame) < min_rows:
        errors.append(too_few_candles(len(frame), min_rows))
    if errors:
        raise HistoryInvalid(errors[:MAX_REPORTED])
