#!/usr/bin/env bash
# Builds local/node:20-bookworm-slim, a stand-in for the official node:20-bookworm-slim for machines that
# cannot reach an image registry: Debian bookworm (minbase, from the mirror apt already uses) plus this
# machine's own node and npm, and the `node` user (uid 1000) the official image has. Nothing is pulled.
# Skips the work when the image exists; --force rebuilds it. Prints the image name.
set -euo pipefail

IMAGE=local/node:20-bookworm-slim
DOCKER=${DOCKER:-/usr/bin/docker}
if [ "${1:-}" != "--force" ] && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then echo "$IMAGE"; exit 0; fi

case "$(node -v)" in v20.*) ;; *) echo "the host's node must be 20.x to stand in for node:20 (found $(node -v))" >&2; exit 1 ;; esac
MIRROR=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
  | grep -oE 'https?://[^ ]+' | head -n 1 || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}

ROOTFS=$(mktemp -d /tmp/node-base.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
echo "debootstrap bookworm from $MIRROR (about 2 minutes)" >&2
debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >/dev/null

install -D "$(command -v node)" "$ROOTFS/usr/local/bin/node"
NPM_DIR=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
mkdir -p "$ROOTFS/usr/local/lib/node_modules"
cp -a "$NPM_DIR" "$ROOTFS/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$ROOTFS/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$ROOTFS/usr/local/bin/npx"
chroot "$ROOTFS" groupadd -g 1000 node
chroot "$ROOTFS" useradd -u 1000 -g node -m -s /bin/bash node
# npm inside a build trusts the registry exactly as the host's npm does.
cp /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt" 2>/dev/null \
  || install -D /etc/ssl/certs/ca-certificates.crt "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
mkdir -p "$ROOTFS/usr/local/etc"
echo "cafile=/etc/ssl/certs/ca-certificates.crt" >"$ROOTFS/usr/local/etc/npmrc"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*

tar -C "$ROOTFS" -c . | "$DOCKER" import \
  --change 'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["node"]' - "$IMAGE" >/dev/null
echo "$IMAGE"
