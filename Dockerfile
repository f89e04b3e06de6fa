# syntax=docker/dockerfile:1
# The reference server (app/) on mcp-fleet, for production: `docker build -t mcp-fleet-reference .`
# Stage 1 compiles the library and the server and builds the production tree with
# scripts/production-tree.mjs (the same script CI runs to check that tree without Docker);
# stage 2 is that tree on the Node image: production dependencies only, no TypeScript, no tsx, no
# second Node binary (the `node` devDependency used by the conformance suite stays in stage 1).
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
# Dependencies first, so they are cached while only the sources change. No install scripts: nothing
# the build needs has one (the Node 22 of the conformance suite is not fetched).
COPY package.json package-lock.json ./
COPY app/package.json app/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build && node scripts/production-tree.mjs /out --no-build

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    ENVIRONMENT=production \
    MCP_SERVER_HOST=0.0.0.0 \
    MCP_SERVER_PORT=9100
WORKDIR /app
# Owned by root and not writable by the server's user; the server writes nothing to disk.
COPY --from=build /out ./
# The image's unprivileged `node` user (uid 1000), numeric so runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 9100
# /livez: the process answers (Kubernetes uses its own probes, see deploy/).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.MCP_SERVER_PORT||9100)+'/livez').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Node runs as PID 1 and handles SIGTERM/SIGINT itself (app/main.ts: drain, hand sessions off, exit 0
# within 10 s); it starts no child processes, so there are no zombies to reap and no init is needed.
STOPSIGNAL SIGTERM
CMD ["node", "--enable-source-maps", "app/dist/main.js"]
