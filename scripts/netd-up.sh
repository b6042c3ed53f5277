#!/usr/bin/env bash
# Sets netd up on this host and runs the daemon on its embedded defaults
# (socket unix:///run/netd/netd.sock, state in /var/lib/netd, default bridge netd0).
# Extra arguments go to `netd daemon`. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "netd-up: run as root (netd configures the kernel's networking)" >&2; exit 1; fi
./scripts/install-deps.sh
exec node dist/src/cli/main.js daemon "$@"
