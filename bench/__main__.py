"""`python -m bench` (or `make bench`): every benchmark in turn, then one table of all figures.

Each benchmark is its own module (`bench/<name>_bench.py`) that prints its table and writes
`bench/results/<name>.json`; this runner runs them as separate processes (so one's memory does
not count against another's) and prints the combined table with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def machine() -> str:
    import psutil

    mem = psutil.virtual_memory().total / 2**30
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()}"


def flatten(prefix: str, value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows: list[tuple[str, str]] = []
        for key, inner in value.items():
            rows += flatten(f"{prefix}.{key}" if prefix else str(key), inner)
        return rows
    if isinstance(value, float):
        return [(prefix, f"{value:,.4g}")]
    if isinstance(value, list):
        return [(prefix, f"[{len(value)} items]")] if len(value) > 6 else [(prefix, json.dumps(value))]
    return [(prefix, str(value))]


def ensure_infra() -> None:
    """Start (or reuse) the local Kafka and Postgres the benchmarks run on, as the tests do: after
    `make down` a benchmark must not fail with a refused connection. External ones named in the
    settings (`CANDLECAST_KAFKA_BOOTSTRAP`, `CANDLECAST_DATABASE_URL`) are used as they are."""
    from shared.config import Settings
    from shared.infra.kafka import LocalKafka
    from shared.infra.postgres import LocalPostgres

    settings = Settings()
    if not settings.kafka_bootstrap:
        print(f"kafka:    {LocalKafka(settings).up()}", flush=True)
    if not settings.database_url:
        print(f"postgres: {LocalPostgres(settings).up()}", flush=True)


def main() -> int:
    modules = sorted(p.stem for p in HERE.glob("*_bench.py"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks (default all): {', '.join(modules)}")
    parser.add_argument("--report-only", action="store_true", help="print the table from saved results")
    args = parser.parse_args()
    chosen = args.names or modules
    unknown = set(chosen) - set(modules)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    failed = []
    if not args.report_only:
        ensure_infra()
        for name in chosen:
            print(f"\n=== {name}", flush=True)
            if subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=HERE.parent).returncode != 0:
                failed.append(name)
    print(f"\n=== all benchmarks — {machine()}")
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        print(f"\n[{path.stem}]")
        for key, value in flatten("", data):
            print(f"  {key:<60} {value}")
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
