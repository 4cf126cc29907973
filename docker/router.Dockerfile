# The router image: `python -m controlplane.router` and `glmctl keys sync` (its init
# container). Built by `make images` as glmctl:<glmctl version>; build context: the repo.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/glmctl
COPY pyproject.toml README.md ./
COPY controlplane ./controlplane
# `serve`: the router's HTTP stack, its Redis client and the Ray-side modules it imports.
# DL3013 asks for pinned pip packages: this installs the project itself, whose
# dependencies pyproject.toml bounds.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[serve]" \
    && useradd --uid 1000 --create-home glmctl

USER 1000
EXPOSE 8000
ENTRYPOINT ["python", "-m", "controlplane.router"]
