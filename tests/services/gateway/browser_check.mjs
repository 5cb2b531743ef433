// Opens the dashboard in headless Debian Chromium (driven by playwright-core), checks that the
// candles are drawn, waits for a live prediction pushed over the websocket, saves a screenshot.
//
// usage: node browser_check.mjs URL SCREENSHOT EXPECTED_MODEL_VERSION
// env:   PLAYWRIGHT_CORE  path of playwright-core's index.mjs
//        CHROMIUM         the browser (default /usr/bin/chromium)
// Prints "READY" once the page is loaded and live, then one JSON line with what it saw.
import { pathToFileURL } from "node:url";

const [url, screenshot, expectedVersion] = process.argv.slice(2);
const { chromium } = await import(pathToFileURL(process.env.PLAYWRIGHT_CORE).href);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Without these Chromium reaches for Google's services, which this closed network refuses.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const result = { consoleErrors: [], requestsOutside: [] };
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
  page.on("console", (msg) => { if (msg.type() === "error") result.consoleErrors.push(msg.text()); });
  page.on("pageerror", (err) => result.consoleErrors.push(String(err)));
  page.on("request", (req) => {
    const u = new URL(req.url());
    if (!["127.0.0.1", "localhost"].includes(u.hostname) && !["data:", "blob:"].includes(u.protocol)) {
      result.requestsOutside.push(req.url());
    }
  });
  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector('body[data-ready="1"]', { timeout: 30000 });
  await page.waitForSelector("#live-status.on", { timeout: 30000 });
  Object.assign(result, await page.evaluate(() => ({
    candles: window.candlecast.candles,
    predicted: window.candlecast.predicted,
    canvases: document.querySelectorAll("canvas").length,
    metricRows: document.querySelectorAll("#metrics tbody tr").length,
    hitRate: document.getElementById("hit-rate").textContent,
    errorBanner: document.getElementById("error").hidden ? "" : document.getElementById("error").textContent,
  })));
  // Pixels in the candle colours on the main chart: the candles were really drawn.
  result.candlePixels = await page.evaluate(() => {
    let count = 0;
    for (const canvas of document.querySelectorAll("#candles-chart canvas")) {
      const ctx = canvas.getContext("2d");
      if (!ctx || !canvas.width || !canvas.height) continue;
      const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      for (let i = 0; i < data.length; i += 4) {
        const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
        const up = Math.abs(r - 0x26) < 8 && Math.abs(g - 0xa6) < 8 && Math.abs(b - 0x9a) < 8;
        const down = Math.abs(r - 0xef) < 8 && Math.abs(g - 0x53) < 8 && Math.abs(b - 0x50) < 8;
        if (up || down) count += 1;
      }
    }
    return count;
  });
  console.log("READY");
  await page.waitForSelector(`#live-prediction[data-model-version="${expectedVersion}"]`, { timeout: 60000 });
  result.liveText = await page.textContent("#live-prediction");
  result.liveMessages = await page.evaluate(() => window.candlecast.live);
  await page.screenshot({ path: screenshot, fullPage: true });
  result.ok = true;
} catch (error) {
  result.ok = false;
  result.error = String(error);
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
