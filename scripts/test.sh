#!/usr/bin/env bash
# The whole test suite, on a Debian machine, as root: installs what the tests need
# (scripts/deps.sh: the kernel tools, a stock dockerd, etcd, a static busybox for
# the test image, ...), then runs unit, integration and engine tests. Tests make their own namespaces and leave the
# machine's root network namespace alone.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: the tests create network namespaces and run dockerd: run as root" >&2
  exit 1
fi

scripts/deps.sh

# Tests exec binaries of other packages (netd's tests run netd-cni), which
# cargo builds for a package's own tests only.
cargo build --workspace --bins --examples --locked
exec cargo test --workspace --locked "$@"
