#!/usr/bin/env bash
# Builds the real control-plane binaries the e2e suite and the demo run:
# kube-apiserver and etcd from pinned Go modules, and helm. Each binary goes
# into a cache folder that git ignores; a second run with the same pins is a
# no-op. kube-apiserver cannot be `go install`ed (its go.mod replaces the
# staging modules with local paths), so it is built from a throwaway module
# that requires k8s.io/kubernetes and replaces every staging module with its
# published v0.X.Y.
#
# Usage: build.sh [all|kube-apiserver|etcd|helm]   (prints the bin folder on stdout)
# Progress goes to stderr. Environment: K8S_VERSION, ETCD_VERSION, HELM_VERSION,
# AKV_INJECTOR_CACHE (default <repo>/.cache).
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v4.3.1}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${AKV_INJECTOR_CACHE:-$root/.cache}"
bin="$cache/bin"
mkdir -p "$bin"

say() { printf '[build] %s\n' "$*" >&2; }
stamp() { printf '%s' "$1" >"$bin/.$2.version"; }
fresh() { [ -x "$bin/$2" ] && [ "$(cat "$bin/.$2.version" 2>/dev/null)" = "$1" ]; }

# The test files, the demo and the chart tests may all ask for the binaries at
# once: one builds, the others wait and then find them cached.
exec 9>"$cache/.build.lock"
if ! flock -n 9; then
  say "another build is running; waiting for it"
  flock 9
fi

# Runs "$@" with its output in a log, printing a line every 20 s so a person
# (or CI) watching a multi-minute Go build sees it is alive, and the log's
# tail if it fails.
timed() {
  local what=$1
  shift
  local t0=$SECONDS log
  log="$(mktemp "$cache/build-XXXXXX.log")"
  say "$what: building (the first build takes minutes on two cores)"
  "$@" >"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (((SECONDS - t0) % 20 == 0)) && kill -0 "$pid" 2>/dev/null; then
      say "$what: still building ($((SECONDS - t0)) s)"
    fi
  done
  if ! wait "$pid"; then
    say "$what: FAILED after $((SECONDS - t0)) s; last lines of $log:"
    tail -n 40 "$log" >&2
    exit 1
  fi
  rm -f "$log"
  say "$what: built in $((SECONDS - t0)) s"
}

# go build into a temporary name, then rename: an interrupted build never
# leaves a half-written binary under the real name.
install_binary() {
  local name=$1
  shift
  CGO_ENABLED=0 go build -trimpath -o "$bin/.$name.tmp" "$@"
  mv -f "$bin/.$name.tmp" "$bin/$name"
}

build_kube_apiserver() {
  local work="$cache/build/kube-apiserver"
  rm -rf "$work" && mkdir -p "$work"
  cd "$work"
  local minor="${K8S_VERSION#v1.}"
  minor="${minor%%.*}"
  local staging="v0.${K8S_VERSION#v1.}"
  go mod init akv-injector.local/kube-apiserver-build
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')"
  # Every staging module named in kubernetes' own go.mod, at the matching tag.
  local modules
  modules="$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")"
  [ -n "$modules" ] || { echo "no staging modules found in $gomod" >&2; return 1; }
  {
    echo "require k8s.io/kubernetes $K8S_VERSION"
    for m in $modules; do echo "replace $m => $m $staging"; done
    grep '^godebug' "$gomod" || true
  } >>go.mod
  cat >tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  go mod tidy || go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION"
  local pkg=k8s.io/component-base/version
  install_binary kube-apiserver -ldflags "-s -w \
    -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor \
    -X $pkg.gitTreeState=clean" k8s.io/kubernetes/cmd/kube-apiserver
}

build_etcd() {
  local work="$cache/build/etcd"
  rm -rf "$work" && mkdir -p "$work"
  cd "$work"
  go mod init akv-injector.local/etcd-build
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  install_binary etcd -ldflags "-s -w \
    -X go.etcd.io/etcd/api/v3/version.GitSHA=module-$ETCD_VERSION" go.etcd.io/etcd/server/v3
}

build_helm() {
  local work="$cache/build/helm"
  rm -rf "$work" && mkdir -p "$work"
  cd "$work"
  go mod init akv-injector.local/helm-build
  go get "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  # Without these, `helm version` says only the minor version.
  local pkg=helm.sh/helm/v4/internal/version
  install_binary helm -ldflags "-s -w -X $pkg.version=$HELM_VERSION -X $pkg.gitTreeState=clean" \
    helm.sh/helm/v4/cmd/helm
}

command -v go >/dev/null || {
  say "Go is needed to build the control plane (https://go.dev/dl/); none is on PATH"
  exit 1
}

want="${1:-all}"
case "$want" in all | kube-apiserver | etcd | helm) ;; *)
  say "usage: build.sh [all|kube-apiserver|etcd|helm]"
  exit 2
  ;;
esac
for target in kube-apiserver etcd helm; do
  case "$want" in all | "$target") ;; *) continue ;; esac
  case "$target" in
    kube-apiserver) version="$K8S_VERSION" ;;
    etcd) version="$ETCD_VERSION" ;;
    helm) version="$HELM_VERSION" ;;
  esac
  if fresh "$version" "$target"; then
    say "$target $version: cached in $bin"
    continue
  fi
  rm -f "$bin/.$target.version"
  timed "$target $version" "build_${target//-/_}"
  stamp "$version" "$target"
done
echo "$bin"
