#!/usr/bin/env bash
# `docker` for kind, on a host where docker cannot run a container
# --privileged (runc: "unable to apply caps": the host's capability bounding
# set lacks CAP_SYS_RESOURCE). up.sh puts it first on PATH, as `docker`, for
# the kind commands only, and only when it found that to be so. It forwards
# everything to the real docker (AKV_REAL_DOCKER) except:
# - run/create --privileged: every capability but CAP_SYS_RESOURCE, all
#   devices, no masked /proc paths, no SELinux label (the node's entrypoint,
#   e2e/kind/node/entrypoint.sh, mends the rest);
# - exec --privileged: dropped (the exec gets the node's own capabilities);
# - pull of an image docker already holds: success (there may be no registry).
set -euo pipefail
real="${AKV_REAL_DOCKER:?the real docker}"

args=()
case "${1:-}" in
  run | create)
    for arg in "$@"; do
      if [ "$arg" = --privileged ]; then
        args+=(--cap-add=ALL --cap-drop=SYS_RESOURCE --security-opt systempaths=unconfined
          --security-opt label=disable --device-cgroup-rule='a *:* rwm')
      else
        args+=("$arg")
      fi
    done
    ;;
  exec)
    for arg in "$@"; do [ "$arg" = --privileged ] || args+=("$arg"); done
    ;;
  pull)
    if "$real" image inspect "${*: -1}" >/dev/null 2>&1; then exit 0; fi
    args=("$@")
    ;;
  *) args=("$@") ;;
esac
exec "$real" "${args[@]}"
