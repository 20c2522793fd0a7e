#!/usr/bin/env bash
# Deletes the kind cluster and what setup.ts wrote.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tools kind
kind delete cluster --name "$CLUSTER"
rm -rf "$out"
