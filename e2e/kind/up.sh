#!/usr/bin/env bash
# Creates the kind cluster and installs everything the checks need: the
# issuer's discovery opened to anonymous readers, the three images built and
# loaded, the mocks (certificates from certs/) deployed, and akv-injector
# installed with Helm, its sidecars trusting the mocks' CA through the
# chart's sidecar.extraCaCerts. Idempotent: a second run reuses the cluster.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need docker kind kubectl
node="$(node_bin)"
helm="$(helm_bin)"

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  say "cluster $CLUSTER exists; reusing it"
else
  say "creating cluster $CLUSTER"
  kind create cluster --name "$CLUSTER" --config "$here/kind-config.yaml" --wait 180s
fi

say "opening service-account issuer discovery to anonymous readers (as Entra ID reads it)"
k create clusterrolebinding akv-e2e-issuer-discovery \
  --clusterrole=system:service-account-issuer-discovery \
  --group=system:unauthenticated --dry-run=client -o yaml | k apply -f -

say "building images"
docker build -f "$root/Dockerfile.webhook" -t "$WEBHOOK_IMAGE" "$root"
docker build -f "$root/Dockerfile.sidecar" -t "$SIDECAR_IMAGE" "$root"
docker build -f "$here/Dockerfile.mocks" -t "$MOCKS_IMAGE" "$root"
docker pull "$APP_IMAGE"
for image in "$WEBHOOK_IMAGE" "$SIDECAR_IMAGE" "$MOCKS_IMAGE" "$APP_IMAGE"; do
  say "loading $image into $CLUSTER"
  kind load docker-image --name "$CLUSTER" "$image"
done

say "mocks: certificates, manifests and Helm values in $out"
"$node" "$here/setup.ts" "$out"
k apply -f "$out/mocks.yaml"
k -n "$MOCKS_NAMESPACE" rollout status deploy/mocks --timeout=180s

say "installing akv-injector with Helm"
"$helm" upgrade --install "$RELEASE" "$root/charts/akv-injector" \
  --kube-context "kind-$CLUSTER" --namespace "$RELEASE_NAMESPACE" --create-namespace \
  --values "$out/values.yaml" --wait --timeout 5m
say "ready: run e2e/kind/check.sh"
