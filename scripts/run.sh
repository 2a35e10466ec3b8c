#!/usr/bin/env bash
# The main job, as root: run netd with its embedded store, serving its native API on
# /run/netd/netd.sock and registering its Docker plugin socket as
# /run/docker/plugins/netd.sock (NetworkDriver and IpamDriver), so the machine's
# dockerd can use `docker network create -d netd --ipam-driver netd ...`.
# Extra arguments go to `netd daemon` (for example --config /etc/netd/netd.toml).
# volumed runs beside it: /run/volumed/volumed.sock and /run/docker/plugins/volumed.sock
# (VolumeDriver), volumes under /var/lib/volumed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "scripts/run.sh: netd makes bridges and registers in /run/docker/plugins: run as root" >&2
  exit 1
fi

if ! command -v nft >/dev/null; then
  echo "scripts/run.sh: netd's firewall needs nft: apt-get install nftables (or pass --firewall off)" >&2
  case " $* " in *" --firewall off "*) ;; *) exit 1 ;; esac
fi
scripts/deps.sh build
cargo build --release --locked -p netd -p volumed --bins
target/release/volumed daemon &
trap 'kill $(jobs -p) 2>/dev/null || true' INT TERM EXIT
target/release/netd daemon "$@" &
wait
