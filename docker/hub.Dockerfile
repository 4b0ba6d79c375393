# syntax=docker/dockerfile:1
# Keyhub hub image: the hub server (`keyhub-server`: init, serve, migrate),
# which is the entry point, and the operators' client (`keyhub`), which talks
# to a hub's HTTPS API only.
# Build from the repository root (docker/compose.yml does):
#   docker build -f docker/hub.Dockerfile -t keyhub/hub:dev .
# docker/hub.Dockerfile.dockerignore keeps the build context to what is copied below.

# ---------------------------------------------------------------- build ---
FROM node:20-bookworm-slim AS build

# pkcs11js ships no prebuilt binary: node-gyp compiles it during `npm ci`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Manifests first, so the dependency layer is rebuilt only when they change.
# npm ci needs every workspace's package.json to match package-lock.json.
COPY package.json package-lock.json tsconfig.json ./
COPY protocol/package.json protocol/
COPY shared/package.json shared/
COPY hub/package.json hub/
COPY listener/package.json listener/
COPY test/package.json test/
RUN npm ci --no-audit --no-fund

COPY protocol/tsconfig.json protocol/
COPY protocol/src protocol/src
COPY shared/tsconfig.json shared/
COPY shared/src shared/src
COPY hub/tsconfig.json hub/
COPY hub/src hub/src
# The client is a tsc project of its own inside the hub workspace (no
# package.json: it uses the hub's dependencies, commander and cli-progress).
COPY hub/cli/tsconfig.json hub/cli/
COPY hub/cli/src hub/cli/src
# Project references build protocol and shared first.
RUN npx tsc -b hub hub/cli

RUN npm prune --omit=dev --no-audit --no-fund

# What the runtime needs, gathered in one tree: production node_modules (with
# the compiled pkcs11js), the package.json + dist of each workspace the hub
# uses, the dashboard's templates and stylesheet (read from hub/src/dashboard
# at run time), and the client's hub/cli/dist (it resolves commander and cli-progress
# from the hub's node_modules, and finds the server at ../../dist/main.js).
# Links into the workspaces left out would dangle, so they go.
RUN set -eu; \
    mkdir -p /out; \
    cp -a package.json node_modules /out/; \
    for ws in protocol shared hub; do \
      mkdir -p "/out/$ws"; \
      cp -a "$ws/package.json" "$ws/dist" "/out/$ws/"; \
      if [ -d "$ws/node_modules" ]; then cp -a "$ws/node_modules" "/out/$ws/"; fi; \
    done; \
    mkdir -p /out/hub/cli /out/hub/src/dashboard; \
    cp -a hub/cli/dist /out/hub/cli/; \
    cp -a hub/src/dashboard/views hub/src/dashboard/static /out/hub/src/dashboard/; \
    find /out -name '*.tsbuildinfo' -delete; \
    find /out -xtype l -delete

# -------------------------------------------------------------- runtime ---
FROM node:20-bookworm-slim AS runtime

# softhsm2: the development HSM (a real deployment points hsm.module at its
# HSM vendor's PKCS#11 library instead); opensc: pkcs11-tool for operators.
# /var/lib/keyhub/admin: where `keyhub-server init` leaves the first admin's
# token and the hub CA certificate (docker/compose.yml mounts a volume there,
# which starts out with this directory's owner and mode 0700).
# Two wrappers: `keyhub`, the operators' client, and `keyhub-server`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends softhsm2 opensc \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 keyhub \
 && useradd --system --uid 10001 --gid keyhub --home-dir /var/lib/keyhub --shell /usr/sbin/nologin keyhub \
 && mkdir -p /var/lib/keyhub/softhsm/tokens /var/lib/keyhub/admin /etc/keyhub \
 && chown -R keyhub:keyhub /var/lib/keyhub \
 && chmod 0700 /var/lib/keyhub/softhsm/tokens /var/lib/keyhub/admin \
 && printf '#!/bin/sh\nexec node /app/hub/cli/dist/main.js "$@"\n' >/usr/local/bin/keyhub \
 && printf '#!/bin/sh\nexec node /app/hub/dist/main.js "$@"\n' >/usr/local/bin/keyhub-server \
 && chmod 0755 /usr/local/bin/keyhub /usr/local/bin/keyhub-server

COPY docker/config/softhsm2.conf /etc/keyhub/softhsm2.conf
COPY --chmod=0755 docker/scripts/hub-token.sh /usr/local/bin/hub-token.sh
COPY docker/runtime/database-password.cjs /app/docker/database-password.cjs
# Owned by root: the service user can run the code but not change it.
COPY --from=build /out/ /app/

# KEYHUB_HTTP_HOST: in a container the /healthz, /readyz and /metrics endpoint
# listens on every interface; the published ports decide what reaches it. The
# operators' HTTPS API listens where the configuration's api.host/api.port
# say (docker/config/hub.json: 0.0.0.0:8443).
ENV NODE_ENV=production \
    SOFTHSM2_CONF=/etc/keyhub/softhsm2.conf \
    KEYHUB_HTTP_HOST=0.0.0.0 \
    KEYHUB_HTTP_PORT=9464 \
    NODE_OPTIONS="--require /app/docker/database-password.cjs"

WORKDIR /app
USER keyhub:keyhub
# 8443: the operators' HTTPS API (api.port); 9464: /healthz, /readyz, /metrics.
EXPOSE 8443 9464

# /healthz is served by `keyhub-server serve` on KEYHUB_HTTP_PORT.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.KEYHUB_HTTP_PORT || 9464) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# The server; operators use `keyhub` (the client) from anywhere that reaches the API.
ENTRYPOINT ["node", "/app/hub/dist/main.js"]
CMD ["serve"]
