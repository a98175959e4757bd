# An image that runs execwm (docs/scale-out.md): `docker build -t execwm .`, then
#   docker run --rm -v "$PWD/data:/data" execwm trace --synthetic 1000 --out /data/c1
# The entrypoint is execwm; deploy/trace-shard.sh is on the PATH as trace-shard for batch engines.
#
# Sandbox layers inside a container (execwm doctor reports which are active):
# - permission model, empty environment, WebAssembly heap cap, step budget: always, nothing needed.
# - unprivileged user: the image runs as uid 10001; as root instead, setpriv drops each sandbox
#   to nobody (the default CAP_SETUID/CAP_SETGID suffice).
# - network namespace: `unshare -n` per sandbox needs root plus CAP_SYS_ADMIN
#   (docker run --user root --cap-add SYS_ADMIN). Without it, take the whole container off the
#   network instead (docker run --network none; a NetworkPolicy on Kubernetes): tracing needs none.
# - memory: ~160 MB per sandbox worker plus its WebAssembly heap (--memory-mb, default 512).

FROM node:20-bookworm-slim AS build
WORKDIR /opt/execwm
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would compile before the sources are here (the build runs below);
# the optional tfjs-node packages download libtensorflow at install and are left out.
RUN npm ci --ignore-scripts --omit=optional --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
COPY tracer ./tracer
COPY corpus ./corpus
COPY training ./training
COPY eval ./eval
RUN npm run build && npm prune --omit=dev --omit=optional --no-audit --no-fund

FROM node:20-bookworm-slim
# util-linux (unshare, setpriv) is part of every Debian base image.
WORKDIR /opt/execwm
COPY --from=build /opt/execwm/package.json ./package.json
COPY --from=build /opt/execwm/node_modules ./node_modules
COPY --from=build /opt/execwm/dist ./dist
COPY --from=build /opt/execwm/bin ./bin
COPY --from=build /opt/execwm/tracer ./tracer
COPY deploy/trace-shard.sh /usr/local/bin/trace-shard
RUN ln -s /opt/execwm/bin/execwm.js /usr/local/bin/execwm \
 && groupadd --gid 10001 execwm \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin execwm \
 && mkdir /data && chown execwm:execwm /data
USER 10001:10001
ENV NODE_ENV=production
VOLUME ["/data"]
ENTRYPOINT ["execwm"]
CMD ["--help"]
