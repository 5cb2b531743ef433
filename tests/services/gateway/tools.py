"""Programs the gateway's tests drive (Chromium, playwright-core, Prometheus), found or explained.

`make test` installs them first (scripts/test-deps.sh); there a missing one is a failure. Run
outside `make test` (plain pytest), a missing one skips its test with the reason said aloud.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from shared.config import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
PLAYWRIGHT_CORE = PROJECT_ROOT / "node_modules" / "playwright-core" / "index.mjs"


def _missing(what: str) -> None:
    reason = f"{what} is missing: run `bash scripts/test-deps.sh` (make test does)"
    if os.environ.get("MAKELEVEL") or os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def require_browser() -> tuple[str, Path, Path]:
    """(node, chromium, playwright-core's index.mjs)."""
    node = shutil.which("node")
    if node is None:
        _missing("node")
    if not CHROMIUM.exists():
        _missing("Debian's chromium")
    if not PLAYWRIGHT_CORE.exists():
        _missing("npm playwright-core")
    assert node is not None
    return node, CHROMIUM, PLAYWRIGHT_CORE


def require_program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        _missing(f"Debian's {name}")
    assert path is not None
    return path
