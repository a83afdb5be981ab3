# The Dozor image (worker, moderation service, connectors): `docker build -t dozor:0.1.0 .`
# CPU-only torch from the PyTorch index, then the project itself; the default model in
# models/default is part of the copied tree, so the image runs without a network.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first and from the CPU index: `pip install .` then finds torch==2.13.0 satisfied
# and does not pull the CUDA build (several GB) from PyPI. A layer of its own, so that code
# changes do not download it again.
ARG TORCH_VERSION=2.13.0
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"

WORKDIR /app
COPY . /app
RUN pip install . \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/dozor dozor \
    && mkdir -p /var/lib/dozor /etc/dozor \
    && chown dozor:dozor /var/lib/dozor

# PYTHONPATH: the processes import the code from /app, the copied tree, so that the
# moderation UI's templates and static files and the Alembic migration scripts are there
# whatever the wheel's package data holds.
ENV DOZOR_MODEL=/app/models/default \
    DOZOR_DATA_DIR=/var/lib/dozor \
    DOZOR_METRICS_PORT=9464 \
    PYTHONPATH=/app

USER dozor
# 9464 worker /metrics; 8080 moderation UI, API and /metrics; 8081 VK Callback API;
# 9465 a connector's /metrics.
EXPOSE 9464 8080 8081 9465
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=4)"]

ENTRYPOINT ["dozor"]
CMD ["worker"]
