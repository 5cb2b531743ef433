#!/usr/bin/env bash
# What the benchmarks use beside the Python packages: wrk, the HTTP load generator of
# bench/gateway_bench.py (a Python generator on the same two cores caps the figures it measures).
# Installs only what is missing; needs root (or sudo) for apt-get.
set -euo pipefail
if ! command -v wrk >/dev/null; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing Debian package: wrk"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
