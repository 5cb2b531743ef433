"""The dashboard's chart library is vendored into the package from npm, at the locked version."""

from __future__ import annotations

import json

from shared.config import PROJECT_ROOT

STATIC = PROJECT_ROOT / "services" / "gateway" / "static"
BUNDLE = "lightweight-charts.standalone.production.js"


def test_vendored_chart_library_is_the_locked_npm_version() -> None:
    lock = json.loads((PROJECT_ROOT / "package-lock.json").read_text())
    version = lock["packages"]["node_modules/lightweight-charts"]["version"]
    assert json.loads((PROJECT_ROOT / "package.json").read_text())["dependencies"]["lightweight-charts"] == version
    vendored = (STATIC / "vendor" / BUNDLE).read_bytes()
    assert f"Lightweight Charts\u2122 v{version}".encode() in vendored[:300]
    assert (STATIC / "vendor" / "LICENSE").read_text().startswith(("Apache License", "\n", " "))
    installed = PROJECT_ROOT / "node_modules" / "lightweight-charts" / "dist" / BUNDLE
    if installed.exists():  # after `npm ci` (scripts/test-deps.sh): byte for byte what npm installs
        assert installed.read_bytes() == vendored, "run `npm run vendor` after changing the version"


def test_the_page_loads_only_local_assets() -> None:
    html = (STATIC / "index.html").read_text()
    assert "://" not in html
    assert f'src="/static/vendor/{BUNDLE}"' in html
