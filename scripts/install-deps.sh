#!/usr/bin/env bash
# Installs what netd needs on a Debian/Ubuntu host (as root), then its npm dependencies and build.
# With --test, also what the test suite needs: a docker client (Debian's docker.io, when no docker is in
# PATH) for the docker CLI test, socat and kmod for the SCTP test, runc and busybox-static for the OCI hook
# test; no daemon is started here.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(iproute2 iptables nftables dnsutils iperf3 netcat-openbsd conntrack iputils-ping procps util-linux python3 make g++)
with_docker=false
# SCTP test: socat (client and server), kmod (modprobe sctp where the kernel has it as a module).
# OCI hook test: runc (a real runtime) and busybox-static (the container image, no registry).
if [ "${1:-}" = "--test" ]; then packages+=(socat kmod runc busybox-static); fi
if [ "${1:-}" = "--test" ] && ! command -v docker >/dev/null; then with_docker=true; packages+=(docker.io); fi
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # docker.io is there for its client: keep its package scripts from starting dockerd (which would
  # change this host's firewall and bridges) by denying service starts while apt runs.
  guard=""
  if $with_docker && [ ! -e /usr/sbin/policy-rc.d ]; then
    guard=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$guard" && chmod 755 "$guard"
    trap 'rm -f "$guard"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if $with_docker && command -v systemctl >/dev/null; then systemctl disable docker.service docker.socket >/dev/null 2>&1 || true; fi
fi
npm ci --no-audit --no-fund
npm run build
