#!/usr/bin/env bash
# Installs what the suite needs (apt packages, npm dependencies, build) and runs the whole test suite: the unit tests,
# then the integration tests once per firewall backend (iptables, nftables; scripts/run-tests.js).
# Needs root: the integration tests create throwaway network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "test.sh: run as root (the integration tests create network namespaces)" >&2; exit 1; fi
./scripts/install-deps.sh --test
npm test
