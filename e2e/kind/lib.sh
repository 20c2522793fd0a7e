#!/usr/bin/env bash
# Shared by the kind scripts: names (kept equal to e2e/kind/setup.ts `Kind`
# by e2e/kind/kind.test.ts), paths, and small helpers.
# shellcheck disable=SC2034 # the scripts that source this use the names

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${AKV_KIND_OUT:-$here/out}"
# Go builds (e2e/cluster/build.sh) and build contexts; docker's own image
# store caches the images.
cache="${AKV_INJECTOR_CACHE:-$root/.cache}"

CLUSTER="${AKV_KIND_CLUSTER:-akv-injector-e2e}"
MOCKS_NAMESPACE="akv-e2e"
RELEASE="akv-injector"
RELEASE_NAMESPACE="akv-injector"
WEBHOOK_IMAGE="localhost/akv-injector-webhook:kind"
SIDECAR_IMAGE="localhost/akv-injector-sidecar:kind"
MOCKS_IMAGE="localhost/akv-injector-mocks:kind"
APP_IMAGE="busybox:1.37"

# Kubernetes of the cluster, and the kind that makes it.
K8S_VERSION="${K8S_VERSION:-v1.36.3}"
KIND_VERSION="${KIND_VERSION:-v0.33.0}"

say() { printf '[kind] %s\n' "$*" >&2; }

# Fails early, naming what is missing.
need() {
  local missing=()
  for tool in "$@"; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if ((${#missing[@]} > 0)); then
    say "missing: ${missing[*]} (see docs/e2e.md, 'kind')"
    exit 1
  fi
}

# Whether the kubectl on PATH is within one minor version of the cluster's
# (kubectl's supported skew).
kubectl_fits() {
  local minor want="${K8S_VERSION#v1.}"
  want="${want%%.*}"
  minor="$(kubectl version --client -o json 2>/dev/null |
    sed -n 's/^ *"minor": "\([0-9]*\).*/\1/p' | head -n 1)"
  [ -n "$minor" ] && ((minor >= want - 1 && minor <= want + 1))
}

# Puts the named tools (kind, kubectl, helm) on PATH: the ones already there
# (a kubectl that fits the cluster), else the ones e2e/cluster/build.sh builds from Go modules into its cache
# (two at a time; cached after the first run).
tools() {
  local missing=() tool
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null || { [ "$tool" = kubectl ] && ! kubectl_fits; }; then
      missing+=("$tool")
    fi
  done
  ((${#missing[@]} > 0)) || return 0
  command -v go >/dev/null || need "${missing[@]}"
  say "${missing[*]}: not on PATH (or too far from the cluster's version); e2e/cluster/build.sh's"
  local bin
  bin="$(KIND_VERSION="$KIND_VERSION" K8S_VERSION="$K8S_VERSION" \
    "$root/e2e/cluster/build.sh" "${missing[@]}")"
  PATH="$bin:$PATH"
}

# Node 24: the repository's own (npm i) if present, else the one on PATH.
node_bin() {
  if [ -x "$root/node_modules/.bin/node" ]; then
    printf '%s' "$root/node_modules/.bin/node"
  else
    command -v node
  fi
}

# A docker client that builds with BuildKit (the Dockerfiles use
# `FROM --platform=$BUILDPLATFORM`): docker itself when it has the buildx
# plugin, else a client older than 23.0 (BuildKit built in, with
# DOCKER_BUILDKIT=1), such as Debian's docker.io.
buildkit_docker() {
  if docker buildx version >/dev/null 2>&1; then
    command -v docker
    return
  fi
  local client version
  for client in $(type -ap docker) /usr/bin/docker; do
    version="$("$client" version --format '{{.Client.Version}}' 2>/dev/null)" || continue
    case "$version" in 1[0-9].* | 2[0-2].*)
      printf '%s' "$client"
      return
      ;;
    esac
  done
  say "no docker client builds with BuildKit: install the buildx plugin (docker-buildx)"
  return 1
}

# docker build with BuildKit.
build_image() { DOCKER_BUILDKIT=1 "$(buildkit_docker)" build "$@"; }

# Runs "$@" with its output in a log, saying every 20 s that WHAT is still
# going (a person or CI watching a long step sees it is alive), and showing
# the log's tail if it fails.
ticking() {
  local what=$1 log t0=$SECONDS pid next=$((SECONDS + 20))
  shift
  log="$(mktemp "${TMPDIR:-/tmp}/akv-kind-XXXXXX")"
  "$@" >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS >= next)) && kill -0 "$pid" 2>/dev/null; then
      say "$what: still going ($((SECONDS - t0)) s)"
      next=$((next + 20))
    fi
  done
  if wait "$pid"; then
    rm -f "$log"
  else
    tail -n 30 "$log" >&2
    say "$what: FAILED after $((SECONDS - t0)) s; its whole output: $log"
    return 1
  fi
}

# docker build -t TAG ARGS..., with the classic builder, for the local
# images of machines without a registry (no frontend to fetch; any docker
# client has it).
classic_build() {
  local tag=$1
  shift
  ticking "building $tag" env DOCKER_BUILDKIT=0 docker build -t "$tag" "$@"
}

# Whether docker holds an image of that name.
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# Prints the seconds since "$1" (a $SECONDS value), for phase timings.
since() { printf '%ss' "$((SECONDS - $1))"; }

# kubectl against this cluster only, whatever the current context is.
k() { kubectl --context "kind-$CLUSTER" "$@"; }
