#!/usr/bin/env bash
# Runs the kind checks (checks.ts: the shared scenarios of e2e/scenarios.ts
# and what only real nodes show) against the cluster that up.sh made, with
# kubectl exec reading the files. Can run again on a kept cluster.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tools kubectl helm
[ -f "$out/state.json" ] || { say "no $out/state.json: run e2e/kind/up.sh first"; exit 1; }
KUBECTL="$(command -v kubectl)"
# The checks call kubectl; pin it to this cluster's context.
wrapper="$(mktemp)"
trap 'rm -f "$wrapper"' EXIT
printf '#!/bin/sh\nexec %q --context %q "$@"\n' "$KUBECTL" "kind-$CLUSTER" >"$wrapper"
chmod +x "$wrapper"
# The helm checks uninstall and install the release again, as up.sh did.
KUBECTL="$wrapper" HELM="$(command -v helm)" KIND_CONTEXT="kind-$CLUSTER" \
  AKV_KIND_CHART="$root/charts/akv-injector" "$(node_bin)" "$here/checks.ts" "$out"
