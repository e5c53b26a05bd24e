# Sourced by the .ci/*.sh installers. `apt_install PKG...` installs Debian packages (sudo when
# not root) without starting their services: a policy-rc.d that exits 101 keeps each package's
# postinst from starting a system daemon (HAProxy on :80, PostgreSQL on :5432, Prometheus on
# :9090); tests start their own on free ports. `have_apt` says whether apt-get is there.
have_apt() { command -v apt-get >/dev/null 2>&1; }

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  local made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    made_policy=1
  fi
  local rc=0
  { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null; } || rc=$?
  if [ -n "$made_policy" ]; then $sudo rm -f /usr/sbin/policy-rc.d; fi
  return "$rc"
}
