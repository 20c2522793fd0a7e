#!/usr/bin/env bash
# The entrypoint of the locally built kind node image (node/build.sh), run
# before kind's own (/usr/local/bin/entrypoint.kind). It mends only what a
# node that docker could not run --privileged lacks (e2e/kind/host/docker.sh
# runs it with every capability but CAP_SYS_RESOURCE), and does nothing on a
# privileged node:
# - cgroup v1 hierarchies mounted read-only: remounted read-write (a bind
#   remount; a plain remount is refused as busy);
# - no /dev/kmsg, which the kubelet opens: made;
# - no CAP_SYS_RESOURCE, so no process may lower its oom_score_adj (runc
#   fails to start pod sandboxes): containerd told to restrict it.
set -euo pipefail

log() { echo "akv-injector node entrypoint: $*" >&2; }

while read -r target options; do
  case ",$options," in *,ro,*)
    log "remounting $target read-write"
    mount -o remount,bind,rw "$target"
    ;;
  esac
done < <(findmnt -rn -t cgroup -o TARGET,OPTIONS)

if [ ! -e /dev/kmsg ]; then
  log "making /dev/kmsg"
  mknod -m 600 /dev/kmsg c 1 11
fi

cap_bounding="$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)"
if (((16#$cap_bounding >> 24 & 1) == 0)); then
  log "no CAP_SYS_RESOURCE: containerd restrict_oom_score_adj = true"
  sed -i 's/^\(\s*restrict_oom_score_adj\s*=\s*\)false/\1true/' /etc/containerd/config.toml
fi

exec /usr/local/bin/entrypoint.kind "$@"
