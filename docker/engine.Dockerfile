# An engine image for the Ray pods: the engine's official image with glmctl (and the Ray
# release glmctl pins) installed into its Python. Built by `make images` as
# glmctl-<engine>:<glmctl version>-<engine version>, one per engine:
#   sglang  lmsysorg/sglang:v<version>
#   vllm    vllm/vllm-openai:v<version>
#   trtllm  nvcr.io/nvidia/tensorrt-llm/release:<version>
# (controlplane/render/k8s/images.py). Build context: the repo.
ARG BASE_IMAGE=lmsysorg/sglang:v0.5.23
FROM ${BASE_IMAGE}

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

WORKDIR /opt/glmctl
COPY pyproject.toml README.md ./
COPY controlplane ./controlplane
# The engine stays as its image built it; glmctl brings ray[serve] and redis beside it.
# KubeRay starts `ray start` in this container; the log sidecar needs sh, tail and sed.
# DL3013 asks for pinned pip packages: this installs the project itself, whose
# dependencies pyproject.toml bounds.
# hadolint ignore=DL3013
RUN python3 -m pip install --no-cache-dir ".[serve]" \
    && ray --version \
    && command -v python3 sh tail sed

# vLLM's image sets an ENTRYPOINT (its API server); KubeRay gives the command itself.
ENTRYPOINT []
