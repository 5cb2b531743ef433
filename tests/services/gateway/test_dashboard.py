"""The dashboard in a real browser: headless Chromium opens `/` on seeded data, draws the
candles without console errors, and shows a prediction pushed live over Kafka and the websocket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from shared.config import PROJECT_ROOT, Settings
from shared.messaging import topics
from shared.messaging.events import Prediction
from shared.messaging.runtime import make_broker
from tests.services.gateway.conftest import serve
from tests.services.gateway.seed import Seeded
from tests.services.gateway.tools import require_browser

SCREENSHOTS = PROJECT_ROOT / ".data" / "screenshots"
SCRIPT = Path(__file__).with_name("browser_check.mjs")


async def test_dashboard_draws_candles_and_shows_a_live_prediction(gateway_settings: Settings, seeded: Seeded) -> None:
    node, chromium, playwright = require_browser()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screenshot = SCREENSHOTS / "dashboard.png"
    screenshot.unlink(missing_ok=True)
    live_version = "m-live-from-the-test"
    prediction = Prediction(symbol=seeded.symbol, interval=seeded.interval, base_time=seeded.next_time,
                            target_time=seeded.next_time + 300_000, open=61_000, high=61_200, low=60_900,
                            close=61_100, amplitude=0.005, p_up=0.71, model_version=live_version)
    broker = make_broker(gateway_settings, "test")
    await broker.start()
    try:
        async with serve(gateway_settings) as url:
            proc = await asyncio.create_subprocess_exec(
                node, str(SCRIPT), url + "/", str(screenshot), live_version,
                env={"PLAYWRIGHT_CORE": str(playwright), "CHROMIUM": str(chromium), "PATH": "/usr/bin:/bin"},
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            assert proc.stdout is not None
            lines: list[str] = []

            async def read() -> None:
                assert proc.stdout is not None
                async for raw in proc.stdout:
                    lines.append(raw.decode().strip())

            reader = asyncio.create_task(read())
            # Once the page is live, publish until it shows the prediction (the gateway's consumer
            # starts at the latest offset, so a message sent before it is assigned is not seen).
            for _ in range(240):
                if reader.done():
                    break
                if "READY" in lines:
                    await broker.publish(prediction, gateway_settings.topic(topics.PREDICTIONS),
                                         key=topics.symbol_key(seeded.symbol))
                await asyncio.sleep(0.5)
            await asyncio.wait_for(reader, 60)
            await asyncio.wait_for(proc.wait(), 30)
            stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
    finally:
        await broker.stop()
    assert lines, f"the browser script printed nothing: {stderr[-2000:]}"
    result = json.loads(lines[-1])
    assert result["ok"], result
    assert result["candles"] == 288 and result["predicted"] > 200, result
    assert result["candlePixels"] > 500, "no candle-coloured pixels on the chart"
    assert result["canvases"] >= 3
    assert result["metricRows"] >= 3
    assert result["errorBanner"] == ""
    assert result["consoleErrors"] == []
    assert result["requestsOutside"] == [], "the page must load nothing from outside the gateway"
    assert "61100.00" in result["liveText"] and "0.710" in result["liveText"]
    assert screenshot.stat().st_size > 10_000
