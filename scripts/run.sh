#!/usr/bin/env bash
# The main job, as root: for now it serves the example plugins to the machine's dockerd,
# registered in /run/docker/plugins: the volume driver `dirvol` and the network driver
# `vethnet` (plugin-api's examples) and the IPAM driver `netipam` (the ipam crate).
# netd and volumed replace them as they are built.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/run.sh: plugins register in /run/docker/plugins: run as root" >&2
  exit 1
fi

cargo build --release --locked -p plugin-api -p ipam --examples
target/release/examples/volume_driver --name dirvol --root /var/lib/dirvol &
target/release/examples/network_driver --name vethnet &
target/release/examples/ipam_plugin --name netipam &
trap 'kill $(jobs -p) 2>/dev/null || true' INT TERM EXIT
wait
