"""Candle histories from any source, for `POST /predict`: what a row's time is, which columns a
CSV header names, and which interval the spacing says.

A user's history may come from Binance (its archive CSV or kline fields), Yahoo Finance
(`Date,Open,High,Low,Close,Adj Close,Volume`), another exchange or a spreadsheet. Times may be
epoch seconds, milliseconds or microseconds (Binance's archives since 2025), or ISO dates and
date-times (UTC unless they say otherwise). A history with Binance's volume, trade count and
taker volume is "full" and the champion answers it; one without is answered by the champion's
OHLC variant (`shared.model.features.OHLC_FEATURES`).

Every problem is a `HistoryInvalid` naming the row (the file line, for an upload) and the rule.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from services.gateway.validation import MAX_CANDLES, MAX_REPORTED, HistoryInvalid, parse_csv, parse_time, violation
from shared.config import INTERVAL_MS

#: Binance's kline fields the full model reads besides the prices (and `volume`).
EXCHANGE_COLUMNS = ("volume", "trades", "taker_buy_base_volume")

#: Header names (lower case, spaces and dashes as underscores) -> the column they mean.
ALIASES: dict[str, str] = {
    **{name: "open_time" for name in ("open_time", "timestamp", "date", "time", "datetime", "date_time")},
    **{name: name for name in ("open", "high", "low", "close", "volume", "trades", "close_time", "quote_volume",
                               "taker_buy_base_volume", "taker_buy_quote_volume")},
    "count": "trades",
    "number_of_trades": "trades",
    "taker_buy_volume": "taker_buy_base_volume",
    "taker_buy_base_asset_volume": "taker_buy_base_volume",
    "quote_asset_volume": "quote_volume",
    "taker_buy_quote_asset_volume": "taker_buy_quote_volume",
}
REQUIRED = ("open_time", "open", "high", "low", "close")


@dataclass(frozen=True)
class Parsed:
    """A history as a frame (`open_time`, prices, and whichever other columns every row has)."""

    frame: pd.DataFrame
    lines: list[int] | None  # file lines of the rows (uploads); None: rows numbered from 1

    @property
    def full(self) -> bool:
        """Whether the champion itself can answer (Binance's kline fields are all there)."""
        return all(name in self.frame for name in EXCHANGE_COLUMNS)


def frame_of(rows: Sequence[dict[str, Any]], lines: list[int] | None) -> Parsed:
    """Rows of column -> value as a history frame. An optional column must be on every row or none
    (a volume on some rows only would feed the model a guess)."""
    errors: list[dict[str, Any]] = []

    def where(i: int) -> tuple[list[str | int], int]:
        return (["body", "file", lines[i]], lines[i]) if lines is not None else (["body", "candles", i], i + 1)

    present = [name for name in rows[0] if name not in REQUIRED] if rows else []
    for name in present:
        missing = [i for i, row in enumerate(rows) if row.get(name) is None]
        if missing and len(missing) < len(rows):
            loc, row = where(missing[0])
            errors.append(violation([*loc, name], row, "column_on_some_rows", f"{name} on every row or on none",
                                    f"{name} is missing here but given on other rows: give it on every row or none"))
    if errors:
        raise HistoryInvalid(errors)
    columns = [*REQUIRED, *[name for name in present if all(row.get(name) is not None for row in rows)]]
    frame = pd.DataFrame({name: [row.get(name) for row in rows] for name in columns})
    for name in columns:
        frame[name] = frame[name].astype(np.int64 if name in ("open_time", "close_time", "trades") else np.float64)
    return Parsed(frame, lines)


def parse_table_csv(text: str) -> Parsed:
    """A CSV with a header naming its columns (case-insensitive; `ALIASES`); `Adj Close` and other
    columns are ignored."""
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    errors: list[dict[str, Any]] = []
    for fields in reader:
        line = reader.line_num
        if not any(f.strip() for f in fields):
            continue
        if header is None:
            header = [f.strip().lower().replace(" ", "_").replace("-", "_") for f in fields]
            missing = [name for name in REQUIRED if name not in {ALIASES.get(h) for h in header}]
            if missing:
                names = ", ".join("a time column (open_time, timestamp, date or time)" if m == "open_time" else m
                                  for m in missing)
                raise HistoryInvalid([violation(["body", "file", line], line, "csv_header",
                                                "a header naming time, open, high, low, close",
                                                f"the header has no {names}; it has {', '.join(header)}")])
            continue
        row: dict[str, Any] = {}
        for name, cell in zip(header, fields, strict=False):
            column = ALIASES.get(name)
            if column is None or column in row:
                continue
            cell = cell.strip()
            try:
                row[column] = parse_time(cell) if column in ("open_time", "close_time") else \
                    (None if cell == "" and column not in REQUIRED else float(cell))
            except ValueError as exc:
                rule = "an epoch time or ISO date/time" if column in ("open_time", "close_time") else "a number"
                errors.append(violation(["body", "file", line, column], line, "csv_format", f"{column} is {rule}",
                                        f"{column}: {cell!r} is not {rule} ({exc})"))
        absent = [ALIASES[h] for h in header[len(fields):] if ALIASES.get(h) in REQUIRED]
        if absent:
            errors.append(violation(["body", "file", line], line, "csv_format", "a value under every header name",
                                    f"the row has fewer fields than the header ({', '.join(absent)} missing)"))
        if len(errors) >= MAX_REPORTED:
            break
        rows.append(row)
        lines.append(line)
        if len(rows) > MAX_CANDLES:
            raise HistoryInvalid([violation(["body", "file"], None, "too_many_candles", f"at most {MAX_CANDLES} rows",
                                            f"more than {MAX_CANDLES} rows; send the most recent ones")])
    if errors:
        raise HistoryInvalid(errors[:MAX_REPORTED])
    if not rows:
        raise HistoryInvalid([violation(["body", "file"], None, "empty", "at least one candle", "no candle rows")])
    return frame_of(rows, lines)


def parse_any_csv(data: bytes, filename: str) -> Parsed:
    """A Binance archive (no header: Binance's twelve fields) or any CSV with a header."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise HistoryInvalid(
            [violation(["body", "file"], None, "utf8", "the file is UTF-8 text", f"not UTF-8 text ({exc.reason})")]
        ) from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    head = first.split(",")[0].strip()
    if head and (head.isdigit() or head.replace(".", "", 1).isdigit()):
        frame, lines = parse_csv(data, filename)
        return Parsed(frame, lines)
    return parse_table_csv(text)


def infer_interval(parsed: Parsed, served: Sequence[str]) -> str:
    """The interval the spacing says (the most common step between rows), if it is served here."""
    times = parsed.frame["open_time"].to_numpy(np.int64)
    steps = np.diff(times)
    steps = steps[steps > 0]
    served_list = ", ".join(served)
    if len(steps) == 0:
        raise HistoryInvalid([violation(["body"], None, "interval_unknown", f"candles of one of: {served_list}",
                                        "need at least two candles with increasing times to tell the interval")])
    values, counts = np.unique(steps, return_counts=True)
    step = int(values[np.argmax(counts)])
    name = next((name for name, ms in INTERVAL_MS.items() if ms == step), f"{step} ms")
    if name not in served:
        raise HistoryInvalid([violation(["body"], None, "interval_not_served", f"candles of one of: {served_list}",
                                        f"the candles are {name} apart; this deployment serves {served_list}")])
    return name
