#!/usr/bin/env bash
# Shared by the kind scripts: names (kept equal to e2e/kind/setup.ts `Kind`
# by e2e/kind/kind.test.ts), paths, and small helpers.
# shellcheck disable=SC2034 # the scripts that source this use the names

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${AKV_KIND_OUT:-$here/out}"

CLUSTER="${AKV_KIND_CLUSTER:-akv-injector-e2e}"
MOCKS_NAMESPACE="akv-e2e"
RELEASE="akv-injector"
RELEASE_NAMESPACE="akv-injector"
WEBHOOK_IMAGE="localhost/akv-injector-webhook:kind"
SIDECAR_IMAGE="localhost/akv-injector-sidecar:kind"
MOCKS_IMAGE="localhost/akv-injector-mocks:kind"
APP_IMAGE="busybox:1.37"

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

# Node 24: the repository's own (npm i) if present, else the one on PATH.
node_bin() {
  if [ -x "$root/node_modules/.bin/node" ]; then
    printf '%s' "$root/node_modules/.bin/node"
  else
    command -v node
  fi
}

# helm on PATH, else the one e2e/cluster/build.sh builds (needs Go).
helm_bin() {
  if command -v helm >/dev/null; then
    command -v helm
  else
    "$root/e2e/cluster/build.sh" helm >/dev/null
    printf '%s' "$root/.cache/bin/helm"
  fi
}

# kubectl against this cluster only, whatever the current context is.
k() { kubectl --context "kind-$CLUSTER" "$@"; }
