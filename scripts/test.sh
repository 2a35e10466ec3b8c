#!/usr/bin/env bash
# The whole test suite, on a Debian machine, as root: installs what the tests need
# (the kernel tools, a stock dockerd, a static busybox for the test image), then runs
# unit, integration and engine tests. Tests make their own namespaces and leave the
# machine's root network namespace alone.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: the tests create network namespaces and run dockerd: run as root" >&2
  exit 1
fi

packages=(iproute2 nftables iptables docker.io runc busybox-static util-linux e2fsprogs xfsprogs docker-compose tar procps curl)
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
  [ -n "$made_policy" ] && rm -f "$policy"
fi

exec cargo test --workspace --locked "$@"
