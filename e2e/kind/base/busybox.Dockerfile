# Stand-in for busybox:1.37, the e2e app containers' image (built by
# images.sh only where the registry cannot be reached): FROM scratch with
# Debian's static busybox and a link for each of its applets (sh, cat, ls,
# stat, readlink, sleep, id, ...).
ARG BASE
FROM ${BASE} AS parts
RUN set -eu; \
    apt-get update -qq; \
    apt-get install -y -qq --no-install-recommends busybox-static >/dev/null; \
    mkdir -p /out/bin /out/etc /out/tmp /out/root /out/home /out/var/www; \
    cp /bin/busybox /out/bin/busybox; \
    for applet in $(/out/bin/busybox --list); do \
      [ -e "/out/bin/$applet" ] || ln -s busybox "/out/bin/$applet"; \
    done; \
    for applet in sh cat ls stat readlink sleep id; do [ -e "/out/bin/$applet" ]; done; \
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
      'nobody:x:65534:65534:nobody:/home:/bin/false' >/out/etc/passwd; \
    printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >/out/etc/group; \
    chmod 1777 /out/tmp; chmod 700 /out/root

FROM scratch
COPY --from=parts /out/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
