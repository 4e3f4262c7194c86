# syntax=docker/dockerfile:1
#
# proxbox-scheduler: the sidecar that drives proxbox-api full syncs on a schedule.
#
#   docker build -t proxbox-scheduler:0.1.0 .
#   docker run --rm proxbox-scheduler:0.1.0            # PROXBOX_MODE=off: logs "disabled" and exits 0
#   docker run -d --read-only --stop-timeout 35 -p 9750:9750 \
#     -e PROXBOX_MODE="interval=900" -e PROXBOX_API_URL=http://proxbox-api:8000 \
#     -e PROXBOX_API_KEY_FILE=/run/secrets/proxbox_api_key \
#     -v "$PWD/proxbox_api_key.txt:/run/secrets/proxbox_api_key:ro" proxbox-scheduler:0.1.0
#
# The image writes nothing at runtime, so it runs with a read-only root filesystem.
# Give it a stop timeout above PROXBOX_SCHEDULER_SHUTDOWN_GRACE_SECONDS (default 25):
# Docker's default of 10 s would SIGKILL a run that is still finishing.

ARG PYTHON_IMAGE=python:3.12-slim

# ---------------------------------------------------------------- builder
# Builds the project's wheel and the wheels of its dependencies; nothing of
# this stage but /wheels reaches the final image.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --wheel-dir /wheels .

# ---------------------------------------------------------------- final
FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
ARG SOURCE=https://github.com/netdevopsbr/netbox-proxbox
LABEL org.opencontainers.image.title="proxbox-scheduler" \
      org.opencontainers.image.description="Sidecar that drives proxbox-api full syncs (Proxmox -> NetBox) on a schedule" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"

# tini: PID 1 that forwards SIGTERM/SIGINT to the scheduler and reaps zombies
# (exec-mode children). tzdata: zone files for PROXBOX_SCHEDULER_TZ.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini tzdata \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*

# A system user without a home directory: nothing may be written to $HOME.
RUN groupadd --system --gid 10001 proxbox \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin proxbox \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/proxbox-scheduler

# Installed from the builder's wheels only (no index, no cache). pip compiles the
# bytecode now, as root, so nothing needs to be written at runtime.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    pip install --no-index --find-links=/wheels proxbox-scheduler \
    && proxbox-scheduler --version

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROXBOX_MODE=off \
    PROXBOX_SCHEDULER_HTTP_PORT=9750 \
    PROXBOX_SCHEDULER_STATE_PATH=/var/lib/proxbox-scheduler/state.db

# History, last success, backoff and the last slot run survive restarts here.
VOLUME ["/var/lib/proxbox-scheduler"]

USER 10001:10001
WORKDIR /
EXPOSE 9750

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["proxbox-scheduler", "healthcheck"]

ENTRYPOINT ["tini", "--", "proxbox-scheduler"]
CMD ["run"]
