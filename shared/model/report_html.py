"""`candlecast backtest --report FILE.html`: one self-contained page of plots (inline SVG, no
script, no network), for the reader who would rather look than read.

Per kind: per-fold skill and direction accuracy (with its 95% interval), the reliability
diagram of `p_up`, the 90% interval's coverage over time, and high/low error beside persistence.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from shared.model.backtest import BacktestResult
from shared.model.evaluation import MODEL

W, H, PAD = 560, 220, 40


def _x(i: float, n: float) -> float:
    return PAD + (W - 2 * PAD) * (i / max(n, 1))


def _y(v: float, lo: float, hi: float) -> float:
    return H - PAD - (H - 2 * PAD) * ((v - lo) / (hi - lo) if hi > lo else 0.5)


def _frame(title: str, lo: float, hi: float, ticks: Sequence[float], fmt: str) -> list[str]:
    parts = [f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img"><title>{html.escape(title)}</title>',
             f'<text x="{PAD}" y="16" class="t">{html.escape(title)}</text>']
    for tick in ticks:
        y = _y(tick, lo, hi)
        parts.append(f'<line x1="{PAD}" x2="{W - PAD}" y1="{y:.1f}" y2="{y:.1f}" class="g"/>'
                     f'<text x="{PAD - 4}" y="{y + 4:.1f}" class="a" text-anchor="end">{fmt.format(tick)}</text>')
    return parts


def _bars(title: str, labels: Sequence[str], series: dict[str, Sequence[float]], reference: float | None,
          fmt: str, errors: Sequence[tuple[float, float]] | None = None, zero: bool = True) -> str:
    """Bars per label; `zero=False` zooms on the values (a 52% against 50% would not show from 0)."""
    values = [v for vs in series.values() for v in vs] + ([reference] if reference is not None else [])
    if errors:
        values += [e for pair in errors for e in pair]
    floor = [0.0] if zero else []
    lo, hi = min([*values, *floor]), max([*values, *floor])
    span = (hi - lo) or 1.0
    lo, hi = lo - 0.1 * span, hi + 0.1 * span
    parts = _frame(title, lo, hi, np.linspace(lo, hi, 5).tolist(), fmt)
    n, k = len(labels), len(series)
    slot = (W - 2 * PAD) / max(n, 1)
    width = slot * 0.8 / k
    for j, (name, vs) in enumerate(series.items()):
        base = 0.0 if zero else lo
        for i, v in enumerate(vs):
            x = PAD + i * slot + slot * 0.1 + j * width
            top, bottom = _y(max(v, base), lo, hi), _y(min(v, base), lo, hi)
            parts.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" height="{bottom - top:.1f}" '
                         f'class="s{j}"><title>{html.escape(name)} {labels[i]}: {fmt.format(v)}</title></rect>')
            if errors and j == 0:
                e_lo, e_hi = errors[i]
                cx = x + width / 2
                parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{_y(e_lo, lo, hi):.1f}" '
                             f'y2="{_y(e_hi, lo, hi):.1f}" class="e"/>')
    for i, label in enumerate(labels):
        parts.append(f'<text x="{PAD + (i + 0.5) * slot:.1f}" y="{H - PAD + 14}" class="a" '
                     f'text-anchor="middle">{html.escape(label)}</text>')
    if reference is not None:
        y = _y(reference, lo, hi)
        parts.append(f'<line x1="{PAD}" x2="{W - PAD}" y1="{y:.1f}" y2="{y:.1f}" class="r"/>')
    legend = " ".join(f'<tspan class="l{j}">■ {html.escape(name)}</tspan>' for j, name in enumerate(series))
    parts.append(f'<text x="{W - PAD}" y="30" class="a" text-anchor="end">{legend}</text></svg>')
    return "".join(parts)


def _lines(title: str, xs: np.ndarray, series: dict[str, np.ndarray], reference: float, fmt: str,
           lo: float, hi: float) -> str:
    parts = _frame(title, lo, hi, np.linspace(lo, hi, 5).tolist(), fmt)
    n = len(xs) - 1
    for j, (name, ys) in enumerate(series.items()):
        points = " ".join(f"{_x(i, n):.1f},{_y(float(v), lo, hi):.1f}" for i, v in enumerate(ys) if np.isfinite(v))
        parts.append(f'<polyline points="{points}" class="p{j}"><title>{html.escape(name)}</title></polyline>')
    y = _y(reference, lo, hi)
    parts.append(f'<line x1="{PAD}" x2="{W - PAD}" y1="{y:.1f}" y2="{y:.1f}" class="r"/>')
    for i in (0, n):
        day = datetime.fromtimestamp(int(xs[i]) / 1000, UTC).strftime("%Y-%m-%d")
        parts.append(f'<text x="{_x(i, n):.1f}" y="{H - PAD + 14}" class="a" text-anchor="middle">{day}</text>')
    legend = " ".join(f'<tspan class="l{j}">— {html.escape(name)}</tspan>' for j, name in enumerate(series))
    parts.append(f'<text x="{W - PAD}" y="30" class="a" text-anchor="end">{legend}</text></svg>')
    return "".join(parts)


def _reliability(p_up: np.ndarray, up: np.ndarray) -> str:
    edges = np.linspace(0, 1, 11)
    bins = np.clip(np.digitize(p_up, edges) - 1, 0, 9)
    parts = _frame("reliability of p_up: observed share of up candles per predicted bin", 0.0, 1.0,
                   [0.0, 0.25, 0.5, 0.75, 1.0], "{:.2f}")
    parts.append(f'<line x1="{_x(0, 1):.1f}" y1="{_y(0, 0, 1):.1f}" x2="{_x(1, 1):.1f}" y2="{_y(1, 0, 1):.1f}" '
                 'class="r"/>')
    for b in range(10):
        mask = bins == b
        if mask.sum() < 20:
            continue
        px, py = float(np.mean(p_up[mask])), float(np.mean(up[mask]))
        radius = 2 + 6 * np.sqrt(mask.mean())
        parts.append(f'<circle cx="{_x(px, 1):.1f}" cy="{_y(py, 0, 1):.1f}" r="{radius:.1f}" class="s0">'
                     f'<title>predicted {px:.3f}, observed {py:.3f}, {int(mask.sum())} rows</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def kind_section(kind: str, result: BacktestResult) -> str:
    folds = result.folds
    labels = [str(f.index) for f in folds]
    model = [f.evaluation.model_metrics for f in folds]
    persistence = [f.evaluation.metrics["persistence"] for f in folds]
    pooled = result.pooled
    charts = [
        _bars("close skill against persistence, per fold", labels, {kind: [m["skill"] for m in model]}, 0.0,
              "{:+.2%}"),
        _bars("direction accuracy per fold (95% interval)", labels, {kind: [m["direction_accuracy"] for m in model]},
              0.5, "{:.1%}", [(m["direction_ci_low"], m["direction_ci_high"]) for m in model], zero=False),
        _reliability(pooled.forecasts[MODEL].p_up, pooled.actual.p_up),
        _bars("high and low MAE beside persistence, per fold (USDT)", labels,
              {f"{kind} high": [m["high_mae"] for m in model], "persistence high": [p["high_mae"] for p in persistence],
               f"{kind} low": [m["low_mae"] for m in model], "persistence low": [p["low_mae"] for p in persistence]},
              None, "{:.0f}"),
    ]
    bounds = pooled.forecasts[MODEL].bounds.get("close_90")
    if bounds is not None:
        real = pooled.actual.close
        inside = ((real >= bounds[0]) & (real <= bounds[1])).astype(float)
        naive = pooled.forecasts["persistence"].bounds["close_90"]
        naive_inside = ((real >= naive[0]) & (real <= naive[1])).astype(float)
        day = 288
        kernel = np.ones(day) / day
        rolling = np.convolve(inside, kernel, mode="valid")
        naive_rolling = np.convolve(naive_inside, kernel, mode="valid")
        step = max(1, len(rolling) // 400)
        times = pooled.base_times[day - 1 :: step]
        charts.append(_lines("coverage of the 90% close interval, rolling over 288 candles", times,
                             {kind: rolling[::step], "naive": naive_rolling[::step]}, 0.9, "{:.0%}", 0.7, 1.0))
    m = pooled.model_metrics
    summary = (f"{len(folds)} folds, {len(pooled.end_indices):,} predicted candles: close skill {m['skill']:+.3%} "
               f"(DM p {m['dm_p_value']:.3g}), direction {m['direction_accuracy']:.2%}")
    if "coverage_90" in m:
        summary += f", 90% interval coverage {m['coverage_90']:.1%} at width {m['width_90']:.3%} of the price"
    return f"<section><h2>{html.escape(kind)}</h2><p>{html.escape(summary)}</p>{''.join(charts)}</section>"


def backtest_page(title: str, results: dict[str, BacktestResult]) -> str:
    style = (
        "body{font:14px system-ui,sans-serif;margin:24px;color:#222}svg{margin:8px;background:#fafafa}"
        ".t{font-weight:600;font-size:12px}.a{font-size:10px;fill:#555}.g{stroke:#e3e3e3}.r{stroke:#888;"
        "stroke-dasharray:4 3}.e{stroke:#222}.s0,.l0{fill:#1f77b4}.s1,.l1{fill:#ff7f0e}.s2,.l2{fill:#2ca02c}"
        ".s3,.l3{fill:#d62728}polyline{fill:none;stroke-width:1.5}.p0{stroke:#1f77b4}.p1{stroke:#ff7f0e}"
    )
    sections = "".join(kind_section(kind, result) for kind, result in results.items())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>{sections}</body></html>")
