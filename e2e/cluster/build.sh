#!/usr/bin/env bash
# Builds the real control-plane binaries the e2e suite and the demo run:
# kube-apiserver and etcd from pinned Go modules, and helm. Each binary goes
# into a cache folder that git ignores; a second run with the same pins is a
# no-op. kube-apiserver cannot be `go install`ed (its go.mod replaces the
# staging modules with local paths), so it is built from a throwaway module
# that requires k8s.io/kubernetes and replaces every staging module with its
# published v0.X.Y.
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
timed() {
  local what=$1; shift
  local t0=$SECONDS
  say "$what: building (the first build takes minutes on two cores)"
  "$@"
  say "$what: built in $((SECONDS - t0)) s"
}

build_kube_apiserver() {
  local work="$cache/build/kube-apiserver"
  rm -rf "$work" && mkdir -p "$work"
  cd "$work"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local staging="v0.${K8S_VERSION#v1.}"
  go mod init akv-injector.local/kube-apiserver-build >/dev/null 2>&1
  local gomod
  gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')"
  # Every staging module named in kubernetes' own go.mod, at the matching tag.
  local modules
  modules="$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod")"
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
  go mod tidy >/dev/null 2>&1 || go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION"
  local pkg=k8s.io/component-base/version
  CGO_ENABLED=0 go build -trimpath -o "$bin/kube-apiserver" -ldflags "-s -w \
    -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor \
    -X $pkg.gitTreeState=clean" k8s.io/kubernetes/cmd/kube-apiserver
}

build_etcd() {
  local work="$cache/build/etcd"
  rm -rf "$work" && mkdir -p "$work"
  cd "$work"
  go mod init akv-injector.local/etcd-build >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3
}

build_helm() {
  CGO_ENABLED=0 GOBIN="$bin" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
}

want="${1:-all}"
for target in kube-apiserver etcd helm; do
  case "$want" in all | "$target") ;; *) continue ;; esac
  version_var="$(echo "${target//-/_}" | tr a-z A-Z)"
  case "$target" in
    kube-apiserver) version="$K8S_VERSION" ;;
    etcd) version="$ETCD_VERSION" ;;
    helm) version="$HELM_VERSION" ;;
  esac
  if fresh "$version" "$target"; then
    say "$target $version: cached in $bin"
    continue
  fi
  timed "$target $version" "build_${target//-/_}"
  stamp "$version" "$target"
done
echo "$bin"
