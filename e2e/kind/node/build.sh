#!/usr/bin/env bash
# Builds a kind node image of Kubernetes $K8S_VERSION from Go modules, for
# machines where kindest/node cannot be pulled (up.sh calls it only then),
# the way kind's own `kind build node-image` assembles one
# (sigs.k8s.io/kind pkg/build/nodeimage/buildcontext.go): kind's base image
# (base.Dockerfile), kubeadm, kubelet and kubectl in /usr/bin, /kind/version,
# kind's default CNI manifest, and the images kubeadm asks for imported into
# the node's containerd, every one built locally around a static binary.
# A kindnetd stand-in (kindnetd/main.go) takes kindnetd's name.
#
# Usage: build.sh   (prints the image name on stdout; progress on stderr)
# The name carries a hash of the build inputs: when docker holds it, nothing
# is built. Needs Go, gcc and root (debootstrap) the first time.
set -euo pipefail
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
node_dir="$here/node"
work="$cache/kind-node"
LABEL="akv-injector.stand-in"

bookworm="$("$here/base/images.sh" bookworm)"
inputs_hash="$( (
  echo "$K8S_VERSION $KIND_VERSION $bookworm"
  find "$node_dir" -type f | sort | xargs cat
) | sha256sum | cut -c1-12)"
image="localhost/akv-injector/kind-node:$K8S_VERSION-$inputs_hash"
base_image="localhost/akv-injector/kind-base:$KIND_VERSION-$inputs_hash"
if have_image "$image"; then
  say "node image $image: present"
  echo "$image"
  exit 0
fi
need go gcc
trap 'say "node image: FAILED (node/build.sh line $LINENO)"' ERR
t_all=$SECONDS

# Pins read from the sources kind and kubeadm build from.
module_dir() { go mod download -json "$1" | sed -n 's/^\s*"Dir": "\(.*\)",\{0,1\}$/\1/p'; }
kind_src="$(module_dir "sigs.k8s.io/kind@$KIND_VERSION")"
k8s_src="$(module_dir "k8s.io/kubernetes@$K8S_VERSION")"
arg_of() { sed -n "s/^ARG $1=\"\(.*\)\"$/\1/p" "$kind_src/images/base/Dockerfile"; }
const_of() { sed -n "s/^\s*$1 = \"\(.*\)\"$/\1/p" "$k8s_src/cmd/kubeadm/app/constants/constants.go"; }
containerd_version="$(arg_of CONTAINERD_VERSION)"
crictl_version="$(arg_of CRICTL_VERSION)"
etcd_version="v$(const_of DefaultEtcdVersion | sed 's/-[0-9]*$//')"
coredns_version="$(const_of CoreDNSVersion)"
kindnetd_image="$(sed -n 's/^const kindnetdImage = "\(.*\)"$/\1/p' "$kind_src/pkg/build/nodeimage/const_cni.go")"
sandbox_image="$(sed -n 's/^\s*sandbox_image = "\(.*\)"$/\1/p' "$kind_src/images/base/files/etc/containerd/config.toml")"
say "node image $image: building (containerd $containerd_version, crictl $crictl_version," \
  "etcd $etcd_version, coredns $coredns_version)"

# Go builds, two at a time: the node's binaries in the shared cache, etcd at
# kubeadm's version in a cache of its own (the e2e suite pins another).
t0=$SECONDS
bin="$(CONTAINERD_VERSION="$containerd_version" CRICTL_VERSION="$crictl_version" \
  COREDNS_VERSION="$coredns_version" "$root/e2e/cluster/build.sh" \
  kubelet kubeadm kube-controller-manager containerd kubectl coredns \
  kube-apiserver crictl kube-scheduler kube-proxy)"
etcd_bin="$(AKV_INJECTOR_CACHE="$work" ETCD_VERSION="$etcd_version" \
  "$root/e2e/cluster/build.sh" etcd)"
say "Go builds: $(since "$t0")"

rm -rf "$work/ctx" && mkdir -p "$work/ctx/images"

# kind's base image.
t0=$SECONDS
if ! have_image "$base_image"; then
  ctx="$work/ctx/base"
  mkdir -p "$ctx/bin"
  cp -r "$kind_src/images/base/files" "$ctx/files"
  chmod -R u+w,a+rX "$ctx/files"
  find "$ctx/files" -type f -exec chmod 0644 {} +
  chmod 0755 "$ctx"/files/usr/local/bin/* "$ctx"/files/kind/bin/*
  mv "$ctx/files/usr/local/bin/entrypoint" "$ctx/files/usr/local/bin/entrypoint.kind"
  install -m 0755 "$node_dir/entrypoint.sh" "$ctx/files/usr/local/bin/entrypoint"
  cp "$bin"/{containerd,ctr,containerd-shim-runc-v2,crictl} "$ctx/bin/"
  classic_build "$base_image" -f "$node_dir/base.Dockerfile" --build-arg "BASE=$bookworm" \
    --label "$LABEL=kind $KIND_VERSION images/base on Debian bookworm, containerd $containerd_version" \
    "$ctx"
fi
say "base image: $(since "$t0")"

# One image around one binary, saved for the import: FILE becomes PATH in
# an image FROM FROM, tagged TAG.
t0=$SECONDS
image_of() {
  local tag=$1 from=$2 file=$3 path=$4 ctx
  ctx="$work/ctx/image-$(basename "$file")"
  mkdir -p "$ctx" && cp "$file" "$ctx/"
  printf 'FROM %s\nCOPY %s %s\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\nENTRYPOINT ["%s"]\n' \
    "$from" "$(basename "$file")" "$path" "$path" >"$ctx/Dockerfile"
  classic_build "$tag" --label "$LABEL=$(basename "$file") built from Go modules" "$ctx"
  docker save "$tag" -o "$work/ctx/images/$(basename "$file").tar"
}

# kube-proxy (iptables mode) runs iptables and conntrack.
proxy_base="localhost/akv-injector/kube-proxy-base:$inputs_hash"
if ! have_image "$proxy_base"; then
  mkdir -p "$work/ctx/proxy-base"
  printf 'FROM %s\nRUN apt-get update -qq && apt-get install -y -qq --no-install-recommends %s && rm -rf /var/lib/apt/lists/*\n' \
    "$bookworm" "iptables nftables conntrack ipset kmod" >"$work/ctx/proxy-base/Dockerfile"
  classic_build "$proxy_base" "$work/ctx/proxy-base"
fi
gcc -static -Os -o "$work/ctx/pause" "$k8s_src/build/pause/linux/pause.c"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/ctx/kindnetd" "$node_dir/kindnetd/main.go"

pause_image=""
while read -r required; do
  name="${required##*/}"
  name="${name%%:*}"
  tag="${required##*:}"
  case "$name" in
    kube-apiserver | kube-controller-manager | kube-scheduler)
      image_of "$required" scratch "$bin/$name" "/usr/local/bin/$name" ;;
    kube-proxy) image_of "$required" "$proxy_base" "$bin/kube-proxy" /usr/local/bin/kube-proxy ;;
    etcd)
      [ "v${tag%-*}" = "$etcd_version" ] || { say "kubeadm wants $required; built $etcd_version"; exit 1; }
      image_of "$required" scratch "$etcd_bin/etcd" /usr/local/bin/etcd ;;
    coredns)
      [ "$tag" = "$coredns_version" ] || { say "kubeadm wants $required; built $coredns_version"; exit 1; }
      image_of "$required" scratch "$bin/coredns" /coredns ;;
    pause)
      pause_image="$required"
      image_of "$required" scratch "$work/ctx/pause" /pause ;;
    *) say "kubeadm wants $required: not known to this build"; exit 1 ;;
  esac
done < <("$bin/kubeadm" config images list --kubernetes-version "$K8S_VERSION")
image_of "$kindnetd_image" scratch "$work/ctx/kindnetd" /bin/kindnetd
say "images: $(since "$t0")"

# Assemble in a container of the base image, as kind does.
t0=$SECONDS
box="akv-kind-node-build-$$"
trap 'docker rm -f -v "$box" >/dev/null 2>&1 || true' EXIT
docker run -d --name "$box" --entrypoint=sleep --security-opt seccomp=unconfined \
  "$base_image" infinity >/dev/null
in_box() { docker exec -i "$box" "$@"; }
for b in kubeadm kubelet kubectl; do
  docker cp "$bin/$b" "$box:/usr/bin/$b"
  in_box chown root:root "/usr/bin/$b"
done
printf '%s' "$K8S_VERSION" | in_box sh -c 'cat >/kind/version'
# kind's default CNI manifest (its Go source, kindnetd's name filled in).
# shellcheck disable=SC2016 # backquotes of the Go source, not expansions
sed -n '/^const defaultCNIManifest = `$/,/^`$/p' "$kind_src/pkg/build/nodeimage/const_cni.go" |
  sed '1d;$d' | sed "s#\` + kindnetdImage + \`#$kindnetd_image#" |
  in_box sh -c 'mkdir -p /kind/manifests && cat >/kind/manifests/default-cni.yaml'
in_box bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
# shellcheck disable=SC2016 # expanded in the container
in_box bash -c 'for i in $(seq 30); do ctr version >/dev/null 2>&1 && exit 0; sleep 1; done
  cat /tmp/containerd.log >&2; exit 1'
say "importing $(find "$work/ctx/images" -name '*.tar' | wc -l) images into the node's containerd"
for tar in "$work"/ctx/images/*.tar; do
  # ctr warns on every call that cgroup v1 is deprecated: its stderr is shown
  # only when it fails.
  in_box ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned \
    --all-platforms --no-unpack --digests - <"$tar" >/dev/null 2>"$work/ctr.err" ||
    { cat "$work/ctr.err" >&2; exit 1; }
done
# containerd's sandbox image is the one kind's config names.
if [ -n "$pause_image" ] && [ "$sandbox_image" != "$pause_image" ]; then
  in_box ctr --namespace=k8s.io images tag --force "$pause_image" "$sandbox_image" >/dev/null 2>&1
fi
in_box ctr --namespace=k8s.io images list -q 2>/dev/null | grep -v -e '^sha256:' -e '^import-' |
  sed 's/^/[kind]   /' >&2
# Stopped, as containerd stops (its parent is gone, so it stays a zombie).
# shellcheck disable=SC2016 # expanded in the container
in_box bash -c 'pkill -x containerd; for i in $(seq 30); do
  ps -o stat= -C containerd | grep -qv "^Z" || exit 0; sleep 1; done; exit 1'
docker commit \
  --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
  --change "LABEL $LABEL=\"kind node of Kubernetes $K8S_VERSION built from Go modules (e2e/kind/node)\"" \
  "$box" "$image" >/dev/null
rm -rf "$work/ctx" "$work/ctr.err"
say "assembly: $(since "$t0")"
# Builds from other inputs would only fill the disk: removed.
for repo in kind-node kind-base kube-proxy-base; do
  docker images --format '{{.Repository}}:{{.Tag}}' "localhost/akv-injector/$repo" |
    grep -v -e "$inputs_hash\$" | xargs -r docker rmi >/dev/null 2>&1 || true
done
say "node image $image: built in $(since "$t_all")"
echo "$image"
