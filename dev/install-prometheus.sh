#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's package when either is missing.
# The alert rule tests need promtool, the scrape test needs the prometheus binary.
# The package's own service is kept from starting: the tests start their own
# Prometheus on a free loopback port and a background one would hold port 9090.
set -euo pipefail

if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-prometheus: run as root (apt-get install prometheus)" >&2
  exit 1
fi

# invoke-rc.d asks policy-rc.d before starting a service; exit code 101 means
# "action forbidden". Only add ours if the machine has none, and always remove it.
policy=/usr/sbin/policy-rc.d
own_policy=false
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  own_policy=true
fi
cleanup() {
  if [ "$own_policy" = true ]; then
    rm -f "$policy"
  fi
}
trap cleanup EXIT

echo "install-prometheus: installing Debian's prometheus package"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends prometheus >/dev/null

# Belt and braces for machines where systemd runs: the unit may be enabled even
# though it was not started.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

promtool --version | head -n 1
