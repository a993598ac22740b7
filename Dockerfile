# syntax=docker/dockerfile:1
# Leadtime's image: `docker build -t leadtime .` then `docker run leadtime run --config FILE`.
# Reproducible from pinned versions: the base image by exact tag, every Python package by
# exact version (requirements.lock). The final stage has no compiler, no pip and no package
# manager cache, and runs as a numeric non-root user (Kubernetes' runAsNonRoot can verify it).
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/leadtime
COPY requirements.lock /src/requirements.lock
RUN /opt/leadtime/bin/pip install --only-binary=:all: -r /src/requirements.lock
COPY pyproject.toml README.md /src/
COPY leadtime /src/leadtime
COPY autoscaler /src/autoscaler
COPY forecasting /src/forecasting
COPY adapters /src/adapters
RUN /opt/leadtime/bin/pip install --no-deps /src \
 && /opt/leadtime/bin/pip uninstall -y pip setuptools \
 && find /opt/leadtime -name '__pycache__' -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/leadtime /opt/leadtime
ENV PATH=/opt/leadtime/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp
RUN python -m pip uninstall -y pip setuptools wheel 2>/dev/null; \
    rm -rf /root/.cache /usr/local/lib/python3.11/ensurepip
USER 10001:10001
EXPOSE 8080 6443
ENTRYPOINT ["leadtime"]
CMD ["run"]
