#!/usr/bin/env bash
# Creates the kind cluster and installs everything the checks need: the
# issuer's discovery opened to anonymous readers, the three images built and
# loaded, the mocks (certificates from certs/) deployed, and akv-injector
# installed with Helm, its sidecars trusting the mocks' CA through the
# chart's sidecar.extraCaCerts. Idempotent: a second run reuses the cluster.
#
# With Docker and the internet, this is plain kind: the stock images are
# pulled. Without a registry, what cannot be pulled is built locally and
# kept in docker (base/images.sh, node/build.sh), and where docker cannot
# run kind's nodes --privileged, host/docker.sh stands in front of it for
# kind; each only where it is found to be needed. Phase timings go to stderr.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need docker
mkdir -p "$out"
t_up=$SECONDS
timings=()
phase_start() { t_phase=$SECONDS; say "$1"; }
phase_end() {
  timings+=("$1 $(since "$t_phase")")
  say "$1: $(since "$t_phase")"
}

phase_start "tools: kind $KIND_VERSION, kubectl, helm"
tools kind kubectl helm
phase_end tools

phase_start "base images"
"$here/base/images.sh"
phase_end "base images"

phase_start "node image of Kubernetes $K8S_VERSION"
node_image="kindest/node:$K8S_VERSION"
if have_image "$node_image"; then
  say "$node_image: present"
elif docker pull -q "$node_image" >/dev/null 2>&1; then
  say "$node_image: pulled"
else
  say "$node_image cannot be pulled: building one from Go modules"
  node_image="$("$here/node/build.sh")"
fi
phase_end "node image"

# This host's kind: docker in front when it cannot run --privileged; the
# kubelet allowed to run on cgroup v1 when the host is on it.
config="$out/kind-config.yaml"
cp "$here/kind-config.yaml" "$config"
if ! probe="$(docker run --rm --privileged "$APP_IMAGE" true 2>&1)"; then
  if ! grep -q 'apply caps' <<<"$probe"; then
    say "docker cannot run a privileged container: $probe"
    exit 1
  fi
  say "docker cannot run --privileged here ($(grep -o 'unable to apply caps[^:]*' <<<"$probe" | head -n 1)):" \
    "kind runs through host/docker.sh"
  shim="$cache/kind-host-shim"
  mkdir -p "$shim"
  ln -sf "$here/host/docker.sh" "$shim/docker"
  AKV_REAL_DOCKER="$(command -v docker)"
  export AKV_REAL_DOCKER
  kind() { PATH="$shim:$PATH" command kind "$@"; }
fi
if [ "$(docker info --format '{{.CgroupVersion}}')" = 1 ]; then
  say "the host is on cgroup v1: kubelet failCgroupV1: false"
  cat >>"$config" <<'YAML'
# Added by up.sh: this host is on cgroup v1, which kubelet 1.35+ refuses
# unless told otherwise.
kubeadmConfigPatches:
  - |
    kind: KubeletConfiguration
    failCgroupV1: false
YAML
fi

phase_start "cluster $CLUSTER"
# A cluster left by a run that was stopped (docker restarted, a killed job)
# may be there but not answer: it is made again rather than reused.
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  if k get --raw /readyz >/dev/null 2>&1; then
    say "cluster $CLUSTER exists and answers; reusing it"
  else
    say "cluster $CLUSTER exists but does not answer; making it again"
    kind delete cluster --name "$CLUSTER"
  fi
fi
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config "$config" --image "$node_image" --wait 180s
fi
say "opening service-account issuer discovery to anonymous readers (as Entra ID reads it)"
k create clusterrolebinding akv-e2e-issuer-discovery \
  --clusterrole=system:service-account-issuer-discovery \
  --group=system:unauthenticated --dry-run=client -o yaml | k apply -f -
phase_end cluster

phase_start "building images"
build_image -f "$root/Dockerfile.webhook" -t "$WEBHOOK_IMAGE" "$root"
build_image -f "$root/Dockerfile.sidecar" -t "$SIDECAR_IMAGE" "$root"
build_image -f "$here/Dockerfile.mocks" -t "$MOCKS_IMAGE" "$root"
phase_end "images built"

phase_start "loading images into $CLUSTER"
kind load docker-image --name "$CLUSTER" "$WEBHOOK_IMAGE" "$SIDECAR_IMAGE" "$MOCKS_IMAGE" "$APP_IMAGE"
phase_end "images loaded"

phase_start "mocks: certificates, manifests and Helm values in $out"
"$(node_bin)" "$here/setup.ts" "$out"
k apply -f "$out/mocks.yaml"
k -n "$MOCKS_NAMESPACE" rollout status deploy/mocks --timeout=180s
phase_end mocks

phase_start "installing akv-injector with Helm"
helm upgrade --install "$RELEASE" "$root/charts/akv-injector" \
  --kube-context "kind-$CLUSTER" --namespace "$RELEASE_NAMESPACE" --create-namespace \
  --values "$out/values.yaml" --wait --timeout 5m
phase_end helm

k get pods --all-namespaces >&2
say "timings: $(printf '%s; ' "${timings[@]}")total $(since "$t_up")"
say "ready: run e2e/kind/check.sh"
