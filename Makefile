# The two commands of the README: `make run` and `make test`. Everything installs itself.
VENV     ?= .venv
PY       := $(VENV)/bin/python
GLMCTL   := $(VENV)/bin/glmctl
TOPOLOGY ?= topologies/glm45-fp8.yaml
PYTEST_ARGS ?=

.PHONY: run test test-fast slow docs docs-serve lint typecheck unit integration engines install-tier bench system-deps clean images

UV       := $(VENV)/bin/uv
# uv installs in seconds what pip takes a minute for; it is bootstrapped into the venv with
# the venv's own pip (Debian's system Python refuses `pip install` outside a venv).
# --compile-bytecode: as pip does, so that `glmctl` starts without compiling its imports.
UV_INSTALL = $(UV) pip install -q --python $(PY) --compile-bytecode

$(UV):
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip >/dev/null  # a venv made by `uv venv`
	$(PY) -m pip install -q uv

$(VENV)/.core: pyproject.toml $(UV)
	$(UV_INSTALL) -e '.[serve]'
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.core
	$(UV_INSTALL) -e '.[dev]'
	touch $@

system-deps:
	bash ops/install-system-deps.sh

# The router and engine images the Kubernetes manifests name (docs/guides/kubernetes.md);
# needs a container engine and its registries: CONTAINER=podman to use podman.
CONTAINER ?= docker
images: $(VENV)/.core
	$(PY) -m controlplane.render.k8s.images --tool $(CONTAINER) | sh -ex

# Main job on the embedded default: validate, plan, apply on a local cluster, one request, tear down.
run: $(VENV)/.core system-deps
	$(GLMCTL) validate $(TOPOLOGY)
	$(GLMCTL) demo $(TOPOLOGY)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check controlplane tests ops
	$(VENV)/bin/ruff format --check controlplane tests ops

typecheck: $(VENV)/.dev
	$(VENV)/bin/mypy

# One pytest tier, timed; exit code 5 (nothing collected) passes only when PYTEST_ARGS narrows.
TIER = NARROWED=$(if $(strip $(PYTEST_ARGS)),1,) bash ops/ci/pytest-tier.sh

# Everything CI runs (.ci/run): lint, types, the docs, the fast tiers, then the slow tier
# (multi-host namespace cluster, chaos, autoscaling on Ray, self-healing, the secret-leak
# cycle, updates, real vLLM end to end). Measured before: fast tiers about 7.5 min, slow
# about 17.5 min, engine venv builds 6-10 min once: about 35 min of CI's 90.
test: test-fast
	RERUN_FAILED=1 $(TIER) slow $(PY) -m pytest -m slow $(PYTEST_ARGS)

# For development: the same without the slow tier.
test-fast: $(VENV)/.dev system-deps lint typecheck docs
	$(TIER) fast $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

slow: $(VENV)/.dev system-deps
	RERUN_FAILED=1 $(TIER) slow $(PY) -m pytest -m slow $(PYTEST_ARGS)

# The docs site: generated reference pages fresh, then a strict build (broken links and
# anchors, pages missing from the nav fail it; see docs/development.md).
docs: $(VENV)/.dev
	$(PY) -m ops.docs.gen --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir $(VENV)/site

docs-serve: $(VENV)/.dev
	$(VENV)/bin/mkdocs serve

unit: $(VENV)/.dev
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: $(VENV)/.dev system-deps
	$(PY) -m pytest tests/integration -m "integration" $(PYTEST_ARGS)

# The built wheel with each extra in fresh venvs (also part of `make test`).
install-tier: $(VENV)/.dev
	$(PY) -m pytest tests/install -m install $(PYTEST_ARGS)

engines: $(VENV)/.dev
	$(PY) -m pytest -m engines $(PYTEST_ARGS)

bench: $(VENV)/.dev system-deps
	$(PY) -m ops.benchmarks.run_all

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
