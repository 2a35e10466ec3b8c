#!/usr/bin/env bash
# Installs with apt what building and testing need, if missing: protoc (etcd's
# gRPC client is generated at build time), the kernel tools, a stock dockerd,
# docker-compose, runc, etcd, podman, containerd and the reference CNI plugins, a
# static busybox for the test image, mkfs tools.
# Usage: scripts/deps.sh [build]   (build: only what a build needs)
set -euo pipefail

if [ "${1:-}" = build ]; then
  packages=(protobuf-compiler)
else
  packages=(protobuf-compiler iproute2 nftables iptables docker.io docker-compose runc busybox-static util-linux e2fsprogs xfsprogs etcd-server etcd-client tar procps curl podman containerd containernetworking-plugins)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  # Keep the package scripts from starting a dockerd in the machine's own namespace.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [ -n "$made_policy" ]; then rm -f "$policy"; fi
fi

