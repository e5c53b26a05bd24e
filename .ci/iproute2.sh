#!/usr/bin/env bash
# CI: `ip` from Debian's iproute2, so that the multi-host fleet test (test/e2e/fleet-netns.test.ts)
# can make its own network namespaces and veth links (it runs as root in CI).
set -euo pipefail
if command -v ip >/dev/null 2>&1; then
  echo "iproute2 already installed: $(ip -V 2>&1)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get here; the network-namespace test will skip (or fail under CI=true)" >&2
  exit 0
fi
# shellcheck source=apt.sh
. "$(dirname "$0")/apt.sh"
apt_install iproute2
echo "installed: $(ip -V 2>&1)"
