#!/usr/bin/env bash
# Runs the shared e2e scenarios (e2e/scenarios.ts) against the kind cluster
# that up.sh made, with kubectl exec reading the files.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need kubectl
[ -f "$out/state.json" ] || { say "no $out/state.json: run e2e/kind/up.sh first"; exit 1; }
KUBECTL="$(command -v kubectl)"
# The checks call kubectl; pin it to this cluster's context.
wrapper="$(mktemp)"
trap 'rm -f "$wrapper"' EXIT
printf '#!/bin/sh\nexec %q --context %q "$@"\n' "$KUBECTL" "kind-$CLUSTER" >"$wrapper"
chmod +x "$wrapper"
KUBECTL="$wrapper" "$(node_bin)" "$here/checks.ts" "$out"
