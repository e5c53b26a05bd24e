#!/usr/bin/env bash
# CI: install a Prometheus server so that the metric provider's integration test
# (src/metrics/providers/prometheus/prometheus-real.test.ts) runs against a real one instead of
# skipping. Debian/Ubuntu only (apt-get); elsewhere it says so and leaves the test to skip.
# The package's service is not started: the test starts its own server on a free loopback port.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1; then
  echo "prometheus already installed: $(prometheus --version 2>&1 | head -n 1)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get here; the real-Prometheus test will skip" >&2
  exit 0
fi
# shellcheck source=apt.sh
. "$(dirname "$0")/apt.sh"
apt_install prometheus
echo "installed: $(prometheus --version 2>&1 | head -n 1)"
