"""A flood of concurrent `POST /predict` from a process of its own.

Run from the measuring process, the flood's 200 connections and JSON encoding share that
process's event loop with the reads being timed, and the reads' latency then measures the
client as much as the gateway (seen: a 1.3 s stall of the client's own loop). In a process of
its own the flood loads only the gateway.

    python -m testkit.flood BASE_URL REQUESTS HORIZON < HISTORY.json   -> prints {"codes": {...}, ...}
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

import httpx


async def _flood(base: str, history: list[dict[str, Any]], requests: int, horizon: int) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=requests, max_keepalive_connections=requests)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        async def post() -> tuple[int, str | None]:
            response = await client.post(f"{base}/predict", json={"candles": history, "horizon": horizon})
            return response.status_code, response.headers.get("Retry-After")

        started = time.perf_counter()
        answers = await asyncio.gather(*(post() for _ in range(requests)))
    return {"seconds": time.perf_counter() - started,
            "codes": dict(Counter(str(code) for code, _ in answers)),
            "retry_after_on_every_429": all(after is not None for code, after in answers if code == 429)}


async def flood_from_another_process(base: str, history: list[dict[str, Any]], requests: int = 200,
                                     horizon: int = 12) -> dict[str, Any]:
    """`requests` concurrent POST /predict of `history` from a child process; its summary."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "testkit.flood", base, str(requests), str(horizon),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(json.dumps(history).encode())
    if proc.returncode != 0:
        raise RuntimeError(f"the flood failed: {err.decode()[-2000:]}")
    summary: dict[str, Any] = json.loads(out)
    return summary


def main() -> None:
    base, requests, horizon = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    history = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(_flood(base, history, requests, horizon))))


if __name__ == "__main__":
    main()
