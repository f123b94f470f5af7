# syntax=docker/dockerfile:1.7
# One image for every shopstream service; the command picks the service:
#   docker build -t shopstream .                      # CPU image (default, last stage)
#   docker build --target gpu -t shopstream:gpu .     # CUDA 12 + cuDNN 9 image
#   docker run shopstream serve recommendation
# Both images run as uid 10001 with a read-only root file system; only /tmp is written.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

# ---- builder: build the shopstream wheel and install it with its dependencies into a venv ----
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md* ./
COPY shared/ shared/
COPY services/ services/
COPY export/ export/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip wheel --no-deps --wheel-dir /dist . \
    && /opt/venv/bin/pip install /dist/*.whl

# ---- gpu-builder: same venv, built against the CUDA image's own Python ----
FROM ${CUDA_IMAGE} AS gpu-builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /dist /dist
RUN python3.11 -m venv /opt/venv \
    && /opt/venv/bin/pip install /dist/*.whl

# ---- gpu: CUDA runtime + cuDNN for onnxruntime-gpu's CUDA/TensorRT providers ----
FROM ${CUDA_IMAGE} AS gpu
ENV DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin shopstream
COPY --from=gpu-builder /opt/venv /opt/venv
WORKDIR /app
COPY models/ /app/models/
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 9100
# The health port follows the service's *_METRICS__PORT setting when one is set.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os,urllib.request as u; p=next((v for k,v in os.environ.items() if k.endswith('_METRICS__PORT')),'9100'); u.urlopen(f'http://127.0.0.1:{p}/healthz',timeout=4)"]
ENTRYPOINT ["shopstream"]
CMD ["serve", "fraud"]

# ---- cpu (default): slim Python, no compilers, no pip caches ----
FROM ${PYTHON_IMAGE} AS cpu
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin shopstream
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Root-owned and not writable by uid 10001: the service can read its models, never change them.
COPY models/ /app/models/
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 9100
# The health port follows the service's *_METRICS__PORT setting when one is set.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os,urllib.request as u; p=next((v for k,v in os.environ.items() if k.endswith('_METRICS__PORT')),'9100'); u.urlopen(f'http://127.0.0.1:{p}/healthz',timeout=4)"]
ENTRYPOINT ["shopstream"]
CMD ["serve", "fraud"]
