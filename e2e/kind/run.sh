#!/usr/bin/env bash
# The whole kind path: up, check, and down again whatever happened
# (AKV_KIND_KEEP=1 keeps the cluster for a look).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

cleanup() {
  if [ "${AKV_KIND_KEEP:-0}" != 1 ]; then "$here/down.sh"; fi
}
trap cleanup EXIT
"$here/up.sh"
"$here/check.sh"
