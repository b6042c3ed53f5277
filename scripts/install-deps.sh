#!/usr/bin/env bash
# Installs what netd needs on a Debian/Ubuntu host (as root), then its npm dependencies and build.
# With --test, also what the test suite needs: a docker client and dockerd (Debian's docker.io, when either is
# missing from PATH) for the docker CLI and Docker plugin tests, and socat and kmod for the SCTP test; no daemon
# is started here (the plugin test runs a private dockerd of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(iproute2 iptables nftables dnsutils iperf3 netcat-openbsd conntrack iputils-ping procps util-linux python3 make g++)
# SCTP test: socat (client and server), kmod (modprobe sctp where the kernel has it as a module).
if [ "${1:-}" = "--test" ]; then packages+=(socat kmod); fi
# Real runtimes in the tests: runc (OCI hook test), ctr from Debian's containerd (the test runs a private
# containerd of its own; none is started here), busybox-static for the images they build offline.
# Docker CE's containerd.io ships containerd, ctr and runc and conflicts with Debian's containerd and runc
# (apt would remove docker-ce for them): where it is installed, the tests use its binaries.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
if [ "${1:-}" = "--test" ]; then
  if installed containerd.io; then packages+=(busybox-static); else packages+=(runc containerd busybox-static); fi
fi
# podman test: Debian's podman 4.3 (CNI backend; conmon and the stock CNI plugins come with it).
if [ "${1:-}" = "--test" ]; then packages+=(podman busybox-static); fi
# Cluster-store tests: etcd (Debian's etcd-server); each test runs a private etcd in a test namespace, so the
# package's own etcd.service is never started (policy-rc.d below) and is disabled.
if [ "${1:-}" = "--test" ]; then packages+=(etcd-server); fi
if [ "${1:-}" = "--test" ] && ! { command -v docker && command -v dockerd; } >/dev/null; then packages+=(docker.io); fi
missing=()
for p in "${packages[@]}"; do installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # docker.io, containerd, podman and etcd-server are there for their binaries: keep their package scripts from
  # starting dockerd, containerd, podman's API socket or a system etcd (dockerd would change this host's firewall
  # and bridges) by denying service starts while apt runs.
  # Only the units of packages installed in this run are disabled: a docker or containerd already there
  # stays as its owner set it up.
  units=()
  for p in "${missing[@]}"; do
    case "$p" in
      docker.io) units+=(docker.service docker.socket) ;;
      containerd) units+=(containerd.service) ;;
      podman) units+=(podman.service podman.socket podman-restart.service) ;;
      etcd-server) units+=(etcd.service) ;;
    esac
  done
  daemons=false
  if [ "${#units[@]}" -gt 0 ]; then daemons=true; fi
  guard=""
  policy=${NETD_POLICY_RC_D:-/usr/sbin/policy-rc.d} # (a test points it elsewhere)
  if $daemons && [ ! -e "$policy" ]; then
    guard=$policy
    printf '#!/bin/sh\nexit 101\n' >"$guard" && chmod 755 "$guard"
    trap 'rm -f "$guard"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if $daemons && command -v systemctl >/dev/null; then systemctl disable "${units[@]}" >/dev/null 2>&1 || true; fi
fi
npm ci --no-audit --no-fund
npm run build
