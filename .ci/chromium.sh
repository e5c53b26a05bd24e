#!/usr/bin/env bash
# CI: install Debian's chromium so that the dashboard's browser test (test/e2e/dashboard.test.ts,
# driven by playwright-core) runs in a real browser. apt only: no browser is downloaded from
# elsewhere. Under CI=true that test fails, rather than skips, when chromium is missing.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get here; the dashboard's browser test will skip (or fail under CI=true)" >&2
  exit 0
fi
# shellcheck source=apt.sh
. "$(dirname "$0")/apt.sh"
apt_install chromium
echo "installed: $(/usr/bin/chromium --version 2>/dev/null | head -n 1)"
