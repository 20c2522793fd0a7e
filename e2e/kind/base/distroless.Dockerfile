# Stand-in for gcr.io/distroless/nodejs24-debian12:nonroot (built by
# images.sh only where the registry cannot be reached): FROM scratch with
# /nodejs/bin/node, the shared libraries it loads (ldd), a CA bundle,
# root, nobody and nonroot (65532) users, a world-writable /tmp.
ARG NODE_IMAGE
FROM ${NODE_IMAGE} AS parts
COPY ca-certificates.crt /out/etc/ssl/certs/ca-certificates.crt
RUN set -eu; \
    node="$(command -v node)"; \
    mkdir -p /out/nodejs/bin /out/tmp /out/home/nonroot /out/root; \
    cp "$node" /out/nodejs/bin/node; \
    for lib in $(ldd "$node" | grep -o '/[^ ]*'); do \
      mkdir -p "/out$(dirname "$lib")"; cp -L "$lib" "/out$lib"; \
    done; \
    cp /etc/os-release /out/etc/os-release; \
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
      'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
      'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >/out/etc/passwd; \
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'tty:x:5:' 'staff:x:50:' \
      'nonroot:x:65532:' >/out/etc/group; \
    chmod 1777 /out/tmp; chmod 700 /out/root; chown 65532:65532 /out/home/nonroot

FROM scratch
COPY --from=parts /out/ /
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/nodejs/bin/node"]
