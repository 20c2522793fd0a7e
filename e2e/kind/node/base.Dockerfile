# kind's node base image (sigs.k8s.io/kind images/base/Dockerfile) on
# Debian bookworm, for node/build.sh: kind's files/, systemd, iptables,
# nftables, conntrack, runc and the CNI plugins from Debian, and containerd,
# ctr and crictl built from Go modules. Our entrypoint.sh runs before kind's.
ARG BASE
FROM ${BASE}
COPY files/ /
COPY bin/ /usr/local/bin/
RUN set -eux; \
    chmod 755 /kind /kind/bin; \
    DEBIAN_FRONTEND=noninteractive clean-install \
      systemd \
      conntrack iptables nftables iproute2 ethtool util-linux mount kmod \
      libseccomp2 pigz e2fsprogs bash ca-certificates curl jq procps \
      runc containernetworking-plugins; \
    find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete; \
    rm -f /lib/systemd/system/multi-user.target.wants/* \
      /etc/systemd/system/*.wants/* \
      /lib/systemd/system/local-fs.target.wants/* \
      /lib/systemd/system/sockets.target.wants/*udev* \
      /lib/systemd/system/sockets.target.wants/*initctl* \
      /lib/systemd/system/basic.target.wants/*; \
    echo "ReadKMsg=no" >> /etc/systemd/journald.conf; \
    ln -sf /usr/lib/systemd/systemd /sbin/init; \
    systemctl enable kubelet.service containerd.service undo-mount-hacks.service; \
    systemctl mask systemd-binfmt.service; \
    mkdir -p /etc/kubernetes/manifests /opt/cni/bin; \
    ln -s /usr/lib/cni/* /opt/cni/bin/; \
    ctr oci spec \
      | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
      | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json; \
    containerd --version; runc --version; crictl --version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
