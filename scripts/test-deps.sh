#!/usr/bin/env bash
# System packages the tests use beside the Python ones: Java and Maven (for the real Kafka
# broker), Prometheus (scrape tests), Chromium with playwright-core (browser test).
# Installs only what is missing; needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Resolve Kafka's jars now, so the first test does not wait on Maven.
.venv/bin/python -c "from shared.infra.kafka import ensure_jars; print('kafka jars:', ensure_jars())"
