#!/usr/bin/env bash
# Installs what netd needs on a Debian/Ubuntu host (as root), then its npm dependencies and build.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(iproute2 iptables nftables dnsutils iperf3 netcat-openbsd conntrack iputils-ping procps util-linux python3 make g++ socat kmod)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
npm ci --no-audit --no-fund
npm run build
