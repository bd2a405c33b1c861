#!/usr/bin/env bash
# Makes a Docker engine answer on this machine (no systemd here): installs Debian's docker.io when it is
# missing, starts dockerd in the background when it is not running, and waits for it.
# Prints the client to use: Debian's /usr/bin/docker, which has BuildKit built in (a newer docker first on
# PATH may lack the buildx plugin and fall back to the legacy builder, which rejects RUN --mount).
set -euo pipefail

DOCKER=/usr/bin/docker
if [ ! -x "$DOCKER" ] || ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  echo "installing docker.io and debootstrap" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y docker.io debootstrap >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y docker.io debootstrap >/dev/null; }
fi

if ! "$DOCKER" info >/dev/null 2>&1; then
  echo "starting dockerd" >&2
  mkdir -p /var/log
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do "$DOCKER" info >/dev/null 2>&1 && break; sleep 1; done
  "$DOCKER" info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/dockerd.log" >&2; exit 1; }
fi
echo "$DOCKER"
