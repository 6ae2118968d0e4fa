# syntax=docker/dockerfile:1.7
# One image for every service: `nodedrop <service>` picks the process.
#   docker build -t nodedrop-exec .                  # default: `nodedrop api`
#   docker build --target worker -t nodedrop-worker . # CMD preset per service
# Build context filtering lives in .dockerignore.

ARG PYTHON_IMAGE=python:3.11-slim

# -- build: a virtualenv with the project and its dependencies ---------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/nodedrop
# Dependencies change less often than code: resolve them in their own layer
# from the metadata alone (hatchling only needs pyproject and the README).
COPY pyproject.toml README.md ./
RUN /opt/nodedrop/bin/pip install --upgrade pip \
 && /opt/nodedrop/bin/python - <<'PY'
import subprocess, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
subprocess.run(["/opt/nodedrop/bin/pip", "install", *deps], check=True)
PY
COPY libs ./libs
COPY services ./services
RUN /opt/nodedrop/bin/pip install --no-deps . \
 # Byte-compile once here: the runtime root filesystem is read-only.
 && /opt/nodedrop/bin/python -m compileall -q /opt/nodedrop/lib

# -- runtime: slim, no compilers, no pip cache, non-root ----------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="nodedrop-exec" \
      org.opencontainers.image.description="Execution engine for n8n-style workflows" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 nodedrop \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
            --home-dir /nonexistent --shell /usr/sbin/nologin nodedrop
COPY --from=build /opt/nodedrop /opt/nodedrop
ENV PATH=/opt/nodedrop/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LOG_FORMAT=json
WORKDIR /tmp
# Numeric user so Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
ENTRYPOINT ["nodedrop"]
CMD ["api"]

# -- one target per service (same layers, preset command and ports) ----------
FROM runtime AS api
ENV NODEDROP_API_ADDR=0.0.0.0:50051 NODEDROP_METRICS_ADDR=0.0.0.0:9101
EXPOSE 50051 9101
CMD ["api"]

FROM runtime AS scheduler
ENV NODEDROP_SCHEDULER_ADDR=0.0.0.0:50052 NODEDROP_METRICS_ADDR=0.0.0.0:9102
EXPOSE 50052 9102
CMD ["scheduler"]

FROM runtime AS events
ENV NODEDROP_EVENTS_ADDR=0.0.0.0:50053 NODEDROP_METRICS_ADDR=0.0.0.0:9103
EXPOSE 50053 9103
CMD ["events"]

FROM runtime AS worker
ENV NODEDROP_WORKER_ADDR=0.0.0.0:50054 NODEDROP_METRICS_ADDR=0.0.0.0:9104
EXPOSE 50054 9104
CMD ["worker"]

FROM runtime AS gateway
ENV NODEDROP_GATEWAY_ADDR=0.0.0.0:8080 NODEDROP_METRICS_ADDR=0.0.0.0:9105
EXPOSE 8080 9105
CMD ["gateway"]

# The default target (a plain `docker build`) is the generic image.
FROM runtime AS default
