#!/usr/bin/env bash
# System packages the tests use beside the Python ones: Java and Maven (for the real Kafka
# broker), Prometheus (scrape tests), Chromium with playwright-core (browser test).
# Installs only what is missing (a second run does nothing); needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq
  # --no-install-recommends: Prometheus's recommended node exporter and Chromium's extras are not needed.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts the packaged Prometheus as a system service; the tests run their own.
  if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl stop prometheus || true
  fi
fi

# playwright-core (the browser driver, no browser download) from the lockfile, into the
# git-ignored node_modules/ beside package.json.
if [ ! -f node_modules/playwright-core/package.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "installing npm packages (playwright-core, lightweight-charts) into node_modules/"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

# Resolve Kafka's jars now, so the first test does not wait on Maven.
.venv/bin/python -c "from shared.infra.kafka import ensure_jars; print('kafka jars:', ensure_jars())"
