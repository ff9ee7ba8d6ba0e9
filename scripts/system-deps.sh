#!/usr/bin/env bash
# Make sure the programs the test suite starts are installed: PostgreSQL, Redis, Alertmanager and
# Prometheus.
# On Debian/Ubuntu as root they are installed with apt-get; elsewhere this says what to install.
set -euo pipefail

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have_pg() { have initdb || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }

have_pg || missing+=(postgresql)
have redis-server || missing+=(redis-server)
have prometheus-alertmanager || have alertmanager || missing+=(prometheus-alertmanager)
have prometheus || missing+=(prometheus)

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && have apt-get; then
    echo "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d keeps the packages from starting their own daemons; the tests start their own.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    exit 0
fi

cat >&2 <<MSG
The test suite needs these system packages, which are not installed: ${missing[*]}
  Debian/Ubuntu: sudo apt-get install -y ${missing[*]}
  macOS (Homebrew): brew install postgresql redis alertmanager prometheus
MSG
exit 1
