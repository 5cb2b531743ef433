"""Reading a service's Prometheus endpoint, as Prometheus would, from a test or a benchmark."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


async def scrape(port: int, host: str = "127.0.0.1") -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"http://{host}:{port}/metrics")
        response.raise_for_status()
        return response.text


def sample_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels` (0 when there is none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


async def metric(port: int, name: str, **labels: str) -> float:
    """`sample_sum` of a live service's /metrics; 0 while the endpoint does not answer yet."""
    try:
        return sample_sum(await scrape(port), name, **labels)
    except httpx.HTTPError:
        return 0.0
