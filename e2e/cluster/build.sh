#!/usr/bin/env bash
# Builds, from pinned Go modules, the binaries the e2e suite, the demo and the
# kind path run: kube-apiserver and etcd, helm, kind, and the rest of
# Kubernetes (kubectl, kubelet, kubeadm, controller-manager, scheduler,
# proxy) plus what a kind node holds (containerd, crictl, coredns) and
# BuildKit's Dockerfile frontend, for machines that cannot pull kind's
# images. Each binary goes into a cache folder that git ignores; a second run
# with the same pins is a no-op. The Kubernetes commands cannot be
# `go install`ed (kubernetes' go.mod replaces the staging modules with local
# paths), so they are built from a throwaway module that requires
# k8s.io/kubernetes and replaces every staging module with its published
# v0.X.Y; BuildKit's frontend likewise (buildkit's go.mod has `exclude`s).
#
# Usage: build.sh [all|TARGET...]   (prints the bin folder on stdout)
#   all (the default) = kube-apiserver etcd helm. Other targets: kind kubectl
#   kubelet kubeadm kube-controller-manager kube-scheduler kube-proxy
#   containerd crictl coredns dockerfile-frontend. Several targets build two
#   at a time (AKV_BUILD_JOBS, default 2: one per core of a small machine).
# Progress goes to stderr. Environment: K8S_VERSION, ETCD_VERSION,
# HELM_VERSION, KIND_VERSION, CONTAINERD_VERSION, CRICTL_VERSION,
# COREDNS_VERSION, BUILDKIT_VERSION, AKV_INJECTOR_CACHE (default <repo>/.cache).
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v4.3.1}"
KIND_VERSION="${KIND_VERSION:-v0.33.0}"
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.3.4}"
CRICTL_VERSION="${CRICTL_VERSION:-v1.36.0}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.2}"
BUILDKIT_VERSION="${BUILDKIT_VERSION:-v0.34.2}"
K8S_COMMANDS="kube-apiserver kubectl kubelet kubeadm kube-controller-manager kube-scheduler kube-proxy"
TARGETS="$K8S_COMMANDS etcd helm kind containerd crictl coredns dockerfile-frontend"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${AKV_INJECTOR_CACHE:-$root/.cache}"
bin="$cache/bin"
mkdir -p "$bin"

say() { printf '[build] %s\n' "$*" >&2; }
stamp() { printf '%s' "$1" >"$bin/.$2.version"; }
fresh() { [ -x "$bin/$2" ] && [ "$(cat "$bin/.$2.version" 2>/dev/null)" = "$1" ]; }

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
  local pid=$! next=$((t0 + 20))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    # A busy machine may skip a second; the next line is due anyway.
    if ((SECONDS >= next)) && kill -0 "$pid" 2>/dev/null; then
      say "$what: still building ($((SECONDS - t0)) s)"
      next=$((next + 20))
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

# A fresh throwaway module in the cache, as the current folder.
module() {
  local work="$cache/build/$1"
  rm -rf "$work" && mkdir -p "$work"
  cd "$work"
  go mod init "akv-injector.local/$1-build"
}

# One Kubernetes command (kube-apiserver, kubelet, ...) at K8S_VERSION.
build_k8s() {
  local name=$1
  module "$name"
  local minor="${K8S_VERSION#v1.}"
  minor="${minor%%.*}"
  local staging="v0.${K8S_VERSION#v1.}"
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
  printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/%s"\n' "$name" >tools.go
  go mod tidy || go get "k8s.io/kubernetes/cmd/$name@$K8S_VERSION"
  local pkg=k8s.io/component-base/version
  install_binary "$name" -ldflags "-s -w \
    -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor \
    -X $pkg.gitTreeState=clean" "k8s.io/kubernetes/cmd/$name"
}

build_etcd() {
  module etcd
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  install_binary etcd -ldflags "-s -w \
    -X go.etcd.io/etcd/api/v3/version.GitSHA=module-$ETCD_VERSION" go.etcd.io/etcd/server/v3
}

build_helm() {
  module helm
  go get "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  # Without these, `helm version` says only the minor version.
  local pkg=helm.sh/helm/v4/internal/version
  install_binary helm -ldflags "-s -w -X $pkg.version=$HELM_VERSION -X $pkg.gitTreeState=clean" \
    helm.sh/helm/v4/cmd/helm
}

# `go install` into a temporary folder, then the named binaries into bin/.
go_install() {
  local tmp="$cache/build/gobin-$1"
  shift
  rm -rf "$tmp" && mkdir -p "$tmp"
  GOBIN="$tmp" CGO_ENABLED=0 go install -trimpath "$@"
  for b in "$tmp"/*; do mv -f "$b" "$bin/"; done
  rm -rf "$tmp"
}

build_kind() { go_install kind -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"; }

# What kind's base image builds (images/base/Dockerfile), without cgo: the
# optional snapshotters are never used in a kind node.
build_containerd() {
  local m=github.com/containerd/containerd/v2
  go_install containerd -tags "no_btrfs no_devmapper no_zfs no_aufs" \
    -ldflags "-s -w -X $m/version.Version=$CONTAINERD_VERSION" \
    "$m/cmd/containerd@$CONTAINERD_VERSION" "$m/cmd/ctr@$CONTAINERD_VERSION" \
    "$m/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
}

build_crictl() {
  go_install crictl -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
    "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
}

build_coredns() { go_install coredns -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"; }

build_dockerfile_frontend() {
  module dockerfile-frontend
  local pkg=github.com/moby/buildkit/frontend/dockerfile/cmd/dockerfile-frontend
  go get "$pkg@$BUILDKIT_VERSION"
  install_binary dockerfile-frontend -tags "netgo static_build osusergo" \
    -ldflags "-s -w -X main.Version=$BUILDKIT_VERSION -X main.Package=$pkg" "$pkg"
}

version_of() {
  case "$1" in
    kube-* | kubectl | kubelet | kubeadm) echo "$K8S_VERSION" ;;
    etcd) echo "$ETCD_VERSION" ;;
    helm) echo "$HELM_VERSION" ;;
    kind) echo "$KIND_VERSION" ;;
    containerd) echo "$CONTAINERD_VERSION" ;;
    crictl) echo "$CRICTL_VERSION" ;;
    coredns) echo "$COREDNS_VERSION" ;;
    dockerfile-frontend) echo "$BUILDKIT_VERSION" ;;
  esac
}

# One target, unless cached. The test files, the demo, the chart tests and
# the kind scripts may all ask for the same binary at once: one builds, the
# others wait on its lock and then find it cached.
build_one() {
  local target=$1 version
  version="$(version_of "$target")"
  exec 9>"$cache/.build-$target.lock"
  if ! flock -n 9; then
    say "$target: another build is running; waiting for it"
    flock 9
  fi
  if fresh "$version" "$target"; then
    say "$target $version: cached in $bin"
  else
    rm -f "$bin/.$target.version"
    case " $K8S_COMMANDS " in
      *" $target "*) (timed "$target $version" build_k8s "$target") ;;
      *) (timed "$target $version" "build_${target//-/_}") ;;
    esac
    stamp "$version" "$target"
  fi
  exec 9>&-
}

command -v go >/dev/null || {
  say "Go is needed to build these binaries (https://go.dev/dl/); none is on PATH"
  exit 1
}

targets=("$@")
if [ ${#targets[@]} -eq 0 ] || [ "${targets[*]}" = all ]; then targets=(kube-apiserver etcd helm); fi
for target in "${targets[@]}"; do
  case " $TARGETS " in *" $target "*) ;; *)
    say "usage: build.sh [all|TARGET...]; targets: $TARGETS"
    exit 2
    ;;
  esac
done

jobs="${AKV_BUILD_JOBS:-2}"
if [ ${#targets[@]} -gt 1 ] && [ "$jobs" -gt 1 ]; then
  # Lanes: target i goes to lane i mod jobs; each lane builds its share in
  # order, as its own build.sh.
  pids=()
  for ((lane = 0; lane < jobs; lane++)); do
    share=()
    for ((i = lane; i < ${#targets[@]}; i += jobs)); do share+=("${targets[i]}"); done
    if [ ${#share[@]} -gt 0 ]; then
      AKV_BUILD_JOBS=1 "$here/build.sh" "${share[@]}" >/dev/null &
      pids+=($!)
    fi
  done
  failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" = 0 ] || exit 1
else
  for target in "${targets[@]}"; do build_one "$target"; done
fi
echo "$bin"
