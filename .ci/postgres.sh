#!/usr/bin/env bash
# CI: install Debian's PostgreSQL server binaries, so that the PostgreSQL store's tests
# (src/store/postgres/, test/e2e/fleet*.test.ts) run against a real server; under CI=true they
# fail rather than skip when it is missing. Debian/Ubuntu only (apt-get).
# The package's own cluster and service are never used: each test file makes a private cluster
# in a temporary directory with initdb and pg_ctl (test/support/postgres.ts), as the postgres user.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
  echo "postgresql already installed: $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -n 1)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "no apt-get here: install PostgreSQL (initdb, pg_ctl, psql) yourself" >&2
  exit 1
fi
# shellcheck source=apt.sh
. "$(dirname "$0")/apt.sh"
apt_install postgresql postgresql-client
echo "installed: $(ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
