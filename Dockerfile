# syntax=docker/dockerfile:1
#
# The engagement-stream image: one wheel installed into a virtual environment,
# run as a fixed non-root user, with nothing written outside the data volume and
# /tmp so that it runs under readOnlyRootFilesystem in Kubernetes.
#
#   docker build -t engagement-stream:local .
#   docker run --rm engagement-stream:local --help

# Both stages start from the same pinned base so that the virtual environment
# built in the first one finds the same interpreter at the same path.
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

FROM ${PYTHON_IMAGE} AS build

# A compiler for the rare dependency without a wheel for this platform (faust's
# Cython speed-ups, orjson or fastavro on some architectures). Only this stage
# carries it.
RUN apt-get update \
 && apt-get install --yes --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY stream ./stream
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# The dependencies are pinned in pyproject.toml; pip resolves them from the wheel.
RUN python -m venv /opt/engagement-stream/venv \
 && /opt/engagement-stream/venv/bin/pip install --no-cache-dir /wheels/*.whl


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="engagement-stream" \
      org.opencontainers.image.description="LivePerson engagement attributes as typed Avro topics" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed UID/GID so that Kubernetes' runAsUser/fsGroup and host volume
# permissions can name it; no login shell, no home directory contents.
ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" engagement-stream \
 && useradd --system --uid "${APP_UID}" --gid engagement-stream \
      --home-dir /var/lib/engagement-stream --no-create-home \
      --shell /usr/sbin/nologin engagement-stream \
 && mkdir -p /var/lib/engagement-stream \
 && chown engagement-stream:engagement-stream /var/lib/engagement-stream

COPY --from=build /opt/engagement-stream/venv /opt/engagement-stream/venv
COPY schemas /opt/engagement-stream/schemas

# PYTHONDONTWRITEBYTECODE: the root filesystem may be read-only, and pip already
# compiled the bytecode at install time. ES_DATA_DIR holds faust's local table
# state; it is the only place the worker writes besides /tmp.
ENV PATH="/opt/engagement-stream/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ES_SCHEMA_DIR=/opt/engagement-stream/schemas \
    ES_DATA_DIR=/var/lib/engagement-stream \
    ES_HTTP_PORT=8080

VOLUME ["/var/lib/engagement-stream"]
WORKDIR /var/lib/engagement-stream
USER ${APP_UID}:${APP_UID}

# /metrics, /healthz and /readyz. There is no HEALTHCHECK here on purpose: the
# same image runs the one-shot commands (topics create, replay), which serve no
# HTTP; docker-compose.yml and the Helm chart probe the worker instead.
EXPOSE 8080

ENTRYPOINT ["engagement-stream"]
CMD ["worker"]
