// The dashboard: reads the REST API once per symbol/interval/range choice, then follows /ws/predictions.
// Plain script, no build step; LightweightCharts is the vendored standalone build.
"use strict";

const LC = window.LightweightCharts;
const $ = (id) => document.getElementById(id);
const state = { symbol: null, interval: "5m", limit: 288, candles: 0, predicted: 0, live: 0, ws: null };
window.candlecast = state; // read by the browser test and handy in the console

const sec = (ms) => Math.floor(ms / 1000);
const fmt = (x, digits = 2) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
const pct = (x, digits = 1) => (x === null || x === undefined ? "–" : (100 * x).toFixed(digits) + "%");
const when = (ms) => new Date(ms).toISOString().replace("T", " ").slice(0, 16) + " UTC";

function chartOptions(el) {
  return {
    width: el.clientWidth, height: el.clientHeight, autoSize: true,
    layout: { background: { type: LC.ColorType.Solid, color: "#171e26" }, textColor: "#8a96a3" },
    grid: { vertLines: { color: "#1f2831" }, horzLines: { color: "#1f2831" } },
    timeScale: { timeVisible: true, secondsVisible: false },
  };
}

const charts = {};
function buildCharts() {
  const el = $("candles-chart");
  const main = LC.createChart(el, chartOptions(el));
  // Test period: a full-height area on a hidden 0..1 scale behind the candles.
  const shade = main.addSeries(LC.AreaSeries, {
    priceScaleId: "shade", lineVisible: false, topColor: "rgba(120, 144, 255, 0.18)",
    bottomColor: "rgba(120, 144, 255, 0.18)", priceLineVisible: false, lastValueVisible: false,
    crosshairMarkerVisible: false, autoscaleInfoProvider: () => ({ priceRange: { minValue: 0, maxValue: 1 } }),
  });
  main.priceScale("shade").applyOptions({ scaleMargins: { top: 0, bottom: 0 }, visible: false });
  const real = main.addSeries(LC.CandlestickSeries, {
    upColor: "#26a69a", downColor: "#ef5350", borderVisible: false, wickUpColor: "#26a69a", wickDownColor: "#ef5350",
  });
  const pred = main.addSeries(LC.CandlestickSeries, {
    upColor: "rgba(245, 166, 35, 0.15)", downColor: "rgba(245, 166, 35, 0.15)", borderVisible: true,
    borderUpColor: "#f5a623", borderDownColor: "#f5a623", wickUpColor: "#f5a623", wickDownColor: "#f5a623",
    priceLineVisible: false,
  });
  const errEl = $("error-chart");
  const errChart = LC.createChart(errEl, chartOptions(errEl));
  const err = errChart.addSeries(LC.LineSeries, { color: "#e57373", lineWidth: 1, priceLineVisible: false });
  const futEl = $("futures-chart");
  const futChart = LC.createChart(futEl, chartOptions(futEl));
  // The 80% interval around the predicted close: two dashed bounds.
  const bandStyle = { color: "rgba(245, 166, 35, 0.55)", lineWidth: 1, lineStyle: 2, priceLineVisible: false,
    lastValueVisible: false, crosshairMarkerVisible: false };
  const futHi = futChart.addSeries(LC.LineSeries, bandStyle);
  const futLo = futChart.addSeries(LC.LineSeries, bandStyle);
  const futPred = futChart.addSeries(LC.LineSeries, { color: "#f5a623", lineWidth: 2, priceLineVisible: false });
  const futReal = futChart.addSeries(LC.LineSeries, { color: "#26a69a", lineWidth: 2, priceLineVisible: false });
  Object.assign(charts, { main, shade, real, pred, errChart, err, futChart, futPred, futReal, futHi, futLo });
}

async function getJSON(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(body.detail)}`);
  return body;
}

function showError(message) {
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
}

function drawSeries(page) {
  const items = page.items;
  charts.real.setData(items.map((p) => ({ time: sec(p.time), open: p.open, high: p.high, low: p.low, close: p.close })));
  const predicted = items.filter((p) => p.pred_close !== null);
  charts.pred.setData(predicted.map((p) => ({
    time: sec(p.time), open: p.pred_open, high: p.pred_high, low: p.pred_low, close: p.pred_close,
  })));
  charts.shade.setData(items.map((p) => (p.test ? { time: sec(p.time), value: 1 } : { time: sec(p.time) })));
  charts.err.setData(predicted.map((p) => ({ time: sec(p.time), value: 100 * p.err_close })));
  charts.main.timeScale().fitContent();
  charts.errChart.timeScale().fitContent();
  state.candles = items.length;
  state.predicted = predicted.length;
  const hits = predicted.filter((p) => p.direction_hit !== null);
  const testHits = hits.filter((p) => p.test);
  const rate = (rows) => (rows.length ? rows.filter((p) => p.direction_hit).length / rows.length : null);
  $("hit-rate").textContent = pct(page.hit_rate);
  $("hit-rate-detail").textContent =
    `${hits.length} predicted candles in view; test period: ${pct(rate(testHits))} of ${testHits.length}`;
}

function drawFutures(page) {
  const items = page.items;
  charts.futPred.setData(items.map((f) => ({ time: sec(f.time), value: f.pred_close })));
  const banded = items.filter((f) => f.intervals && f.intervals.close_80);
  charts.futHi.setData(banded.map((f) => ({ time: sec(f.time), value: f.intervals.close_80[1] })));
  charts.futLo.setData(banded.map((f) => ({ time: sec(f.time), value: f.intervals.close_80[0] })));
  charts.futReal.setData(items.filter((f) => f.real_close !== null).map((f) => ({ time: sec(f.time), value: f.real_close })));
  charts.futChart.timeScale().fitContent();
  if (items.length) showNext(items[items.length - 1], false);
}

function showNext(p, live) {
  const close = p.close ?? p.pred_close;
  const target = p.target_time ?? p.time;
  $("live-prediction").textContent = `${fmt(close)}  ${p.p_up >= 0.5 ? "▲" : "▼"} p_up ${fmt(p.p_up, 3)}`;
  const band = p.intervals && p.intervals.close_80;
  $("live-prediction-detail").textContent =
    `for ${when(target)} by ${p.model_version}${live ? " (live)" : ""}` +
    (band ? `; 80% interval ${fmt(band[0])} – ${fmt(band[1])}` : "");
  $("live-prediction").dataset.modelVersion = p.model_version;
  $("live-prediction").dataset.targetTime = String(target);
}

const LOWER_IS_BETTER = /(mae|mape|rmse|smape|brier|log_loss)$/;
const PREFERRED = ["close_mae", "close_rmse", "close_mape", "skill", "direction_accuracy", "amplitude_mae", "brier"];

function drawModel(model) {
  const head = $("metrics").querySelector("thead");
  const body = $("metrics").querySelector("tbody");
  head.innerHTML = "";
  body.innerHTML = "";
  if (!model) {
    $("model-version").textContent = "no model yet";
    $("model-detail").textContent = "train one: POST /train or `candlecast train`";
    return;
  }
  $("model-version").textContent = model.version;
  const range = model.data_start ? `data ${when(model.data_start)} – ${when(model.data_end)}` : "";
  $("model-detail").textContent = `${range}${model.test_start ? `; test from ${when(model.test_start)}` : ""}`;
  // Baselines come either flat (one baseline) or as {name: {metric: value}}.
  const base = model.baseline_metrics || {};
  const nested = Object.values(base).some((v) => v !== null && typeof v === "object");
  const baselines = nested ? base : { baseline: base };
  const names = Object.keys(baselines);
  const keys = PREFERRED.filter((k) => k in model.metrics);
  const shown = keys.length ? keys : Object.keys(model.metrics).slice(0, 10);
  head.innerHTML = `<tr><th>metric</th><th>model</th>${names.map((n) => `<th>${n}</th>`).join("")}</tr>`;
  for (const key of shown) {
    const value = model.metrics[key];
    const first = names.length ? baselines[names[0]][key] : undefined;
    let cls = "";
    if (typeof first === "number") {
      const better = LOWER_IS_BETTER.test(key) ? value < first : value > first;
      cls = better ? "better" : "worse";
    }
    const cells = names.map((n) => `<td>${fmt(baselines[n][key], 4)}</td>`).join("");
    body.insertAdjacentHTML("beforeend", `<tr><td>${key}</td><td class="${cls}">${fmt(value, 4)}</td>${cells}</tr>`);
  }
}

function drawDrift(page) {
  const body = $("drift").querySelector("tbody");
  body.innerHTML = "";
  for (const d of page.items.slice(-8).reverse()) {
    const row = document.createElement("tr");
    for (const text of [when(d.detected_at), pct(d.mape / 100, 3), pct(d.persistence_mape / 100, 3), d.reason]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.appendChild(cell);
    }
    body.appendChild(row);
  }
}

function drawLeaderboard(board) {
  const body = $("leaderboard").querySelector("tbody");
  body.innerHTML = "";
  for (const m of board.items) {
    const row = document.createElement("tr");
    const cells = [m.rank, m.model_version, m.kind, m.role, m.rows, fmt(m.close_mae, 4), fmt(m.persistence_mae, 4),
      pct(m.skill, 2), pct(m.direction_hit_rate), pct(m.coverage_80)];
    for (const text of cells) {
      const cell = document.createElement("td");
      cell.textContent = text === null || text === undefined ? "–" : String(text);
      row.appendChild(cell);
    }
    if (m.skill !== null) row.className = m.skill > 0 ? "better" : "worse";
    body.appendChild(row);
  }
}

async function load() {
  const q = `symbol=${encodeURIComponent(state.symbol)}&interval=${encodeURIComponent(state.interval)}`;
  try {
    const [series, futures, models, drift, board] = await Promise.all([
      getJSON(`/series?${q}&limit=${state.limit}`),
      getJSON(`/futures?${q}&limit=${state.limit}`),
      getJSON(`/models?${q}&status=champion&limit=1`),
      getJSON(`/drift?${q}&limit=20`),
      getJSON(`/models/leaderboard?${q}&window=288`),
    ]);
    drawSeries(series);
    drawFutures(futures);
    drawModel(models.items[0]);
    drawDrift(drift);
    drawLeaderboard(board);
    showError("");
    document.body.dataset.ready = "1";
  } catch (error) {
    showError(`could not load data: ${error.message}`);
  }
}

function onLive(message) {
  state.live += 1;
  const data = message.data;
  if (data.symbol !== state.symbol || data.interval !== state.interval) return;
  if (message.type === "prediction") {
    showNext(data, true);
    charts.pred.update({ time: sec(data.target_time), open: data.open, high: data.high, low: data.low, close: data.close });
    charts.futPred.update({ time: sec(data.target_time), value: data.close });
  } else if (message.type === "real_close") {
    charts.futReal.update({ time: sec(data.time), value: data.real_close });
    charts.err.update({ time: sec(data.time), value: (100 * data.err_close) / data.real_close });
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/predictions`);
  state.ws = ws;
  const pill = $("live-status");
  ws.onopen = () => { pill.textContent = "live"; pill.className = "pill on"; };
  ws.onmessage = (event) => {
    try { onLive(JSON.parse(event.data)); } catch (error) { showError(`bad live message: ${error.message}`); }
  };
  ws.onclose = () => {
    pill.textContent = "live: reconnecting";
    pill.className = "pill off";
    setTimeout(connect, 3000);
  };
}

async function main() {
  buildCharts();
  try {
    const info = await getJSON("/symbols");
    const select = $("symbol");
    for (const s of info.symbols) select.add(new Option(s, s));
    state.symbol = info.symbols[0];
    select.onchange = () => { state.symbol = select.value; load(); };
    const intervals = $("interval");
    for (const i of info.intervals) intervals.add(new Option(i, i));
    state.interval = info.interval;
    intervals.value = info.interval;
    intervals.onchange = () => { state.interval = intervals.value; load(); };
    $("range").onchange = (e) => { state.limit = Number(e.target.value); load(); };
  } catch (error) {
    showError(`gateway not answering: ${error.message}`);
    return;
  }
  await load();
  connect();
}

main();
