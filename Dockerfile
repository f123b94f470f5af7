# syntax=docker/dockerfile:1.7
# One serving image for every shopstream service; the command picks the service:
#   docker build -t shopstream .                          # CPU image (default, last stage): onnxruntime
#   docker build --target gpu -t shopstream:gpu .         # CUDA 12 + cuDNN 9 image: onnxruntime-gpu
#   docker build --target tools -t shopstream-tools .     # CPU image + simulator and load generator
#   docker run shopstream serve recommendation
# The serving images hold what `shopstream serve`, `topics create` and `models` need: shared/,
# services/, the CLI (tools/cli, tools/rollout) and models/ -- no simulator, training code,
# benchmarks, load generator, broker harness or tests. `tools` adds sim/ and tools/loadgen for `shopstream produce`.
# All run as uid 10001 with a read-only root file system; only /tmp is written.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-cudnn-runtime-ubuntu22.04

# ---- builder: the serving wheel, built from only the folders serve needs, and the CPU venv ----
# pyproject's [tool.setuptools.packages.find] include only matches packages that are present, so
# the wheel holds exactly the folders copied here. Dependencies come from pyproject via
# deploy/image_requirements.py (cpu: onnxruntime in place of onnxruntime-gpu); the wheel is then
# installed with --no-deps.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY deploy/image_requirements.py deploy/
COPY shared/ shared/
COPY services/ services/
COPY tools/__init__.py tools/
COPY tools/cli/ tools/cli/
COPY tools/rollout/ tools/rollout/
RUN mkdir /dist \
    && python deploy/image_requirements.py cpu > /dist/requirements-cpu.txt \
    && python deploy/image_requirements.py gpu > /dist/requirements-gpu.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip wheel --no-deps --wheel-dir /dist . \
    && /opt/venv/bin/pip install -r /dist/requirements-cpu.txt \
    && /opt/venv/bin/pip install --no-deps /dist/shopstream-*.whl

# ---- tools-builder: the same venv with a wheel that also holds sim/ and tools/loadgen ----
FROM builder AS tools-builder
COPY sim/ sim/
COPY tools/loadgen/ tools/loadgen/
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /dist/tools . \
    && /opt/venv/bin/pip install --no-deps --force-reinstall /dist/tools/shopstream-*.whl

# ---- gpu-builder: the serving wheel with onnxruntime-gpu, against the CUDA image's own Python ----
FROM ${CUDA_IMAGE} AS gpu-builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /dist /dist
RUN python3.11 -m venv /opt/venv \
    && /opt/venv/bin/pip install -r /dist/requirements-gpu.txt \
    && /opt/venv/bin/pip install --no-deps /dist/shopstream-*.whl

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

# ---- tools: slim Python, the serving venv plus the simulated shop, for `shopstream produce` ----
# A client, not a service: no models, no health endpoint. docker-compose's producer runs it; alone:
#   docker run -e SHOPSTREAM_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 shopstream-tools
FROM ${PYTHON_IMAGE} AS tools
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin shopstream
COPY --from=tools-builder /opt/venv /opt/venv
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
HEALTHCHECK NONE
ENTRYPOINT ["shopstream"]
CMD ["produce", "all", "--rate", "200"]

# ---- cpu (default): slim Python, onnxruntime (CPU only), no compilers, no pip caches ----
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
