#!/usr/bin/env bash
# CI: install Debian's HAProxy (2.6, built with Lua and the Prometheus exporter), so that the
# HAProxy traffic provider's tests (src/traffic/haproxy/, test/e2e/haproxy.test.ts) and its
# conformance run against a real HAProxy. The package's own service is never started: each test
# runs its own HAProxy processes on free ports in a temporary directory.
set -euo pipefail
if command -v haproxy >/dev/null 2>&1; then
  echo "haproxy already installed: $(haproxy -v | head -n 1)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get here: install HAProxy 2.6 or later (with Lua) yourself" >&2
  exit 1
fi
# shellcheck source=apt.sh
. "$(dirname "$0")/apt.sh"
apt_install haproxy
echo "installed: $(haproxy -v | head -n 1)"
