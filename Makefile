# Two commands for a fresh machine that has only python3: `make demo` and `make test`.
# Both create .venv when missing and (re)install only when pyproject.toml changed: `make demo`
# only the runtime dependencies (seconds), `make test` the development set (pip upgraded once,
# for dependency groups).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
STAMP := $(VENV)/.installed
# The demo and the tests run the sidecar under the permissive image policy (a release image
# refuses the emulator's freshly generated key ring); images bake theirs in the Dockerfile.
POLICY := $(VENV)/share/entitlement-sidecar/policy.json

.PHONY: demo test lint typecheck pytest bench manifests chart-docs image helm clean

$(BIN)/python:
	@echo "== creating $(VENV)/"
	$(PYTHON) -m venv $(VENV)

# The demo's needs: the package and its runtime dependencies (boto3, pydantic, cryptography,
# PyYAML), with pip's progress bars. A development install (below) includes them.
$(RUNTIME): pyproject.toml | $(BIN)/python
	@echo "== installing the runtime dependencies into $(VENV)/ (the demo needs nothing else)"
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar on -e .
	touch $(RUNTIME)

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "== installing the development set into $(VENV)/ (linters, type stubs, test tools)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[operator]' --group dev
	touch $(STAMP) $(RUNTIME)

$(POLICY): | $(RUNTIME)
	$(BIN)/entitlement-sidecar policy bake --profile permissive >/dev/null

demo: $(RUNTIME) $(POLICY)
	$(BIN)/entitlement-sidecar demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) $(POLICY)
	$(BIN)/pytest

bench: $(STAMP) $(POLICY)
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b; done

# Fetch the pinned helm binary into .tools/ (ignored); chart tests do this by themselves.
helm: $(STAMP)
	$(BIN)/python scripts/fetch_helm.py

# Regenerate the plain Kubernetes manifests (kustomize bases) from the charts; tests fail on drift.
manifests: $(STAMP)
	$(BIN)/python scripts/render_manifests.py

# Regenerate each chart's README.md from its values.yaml comments; tests fail on drift.
chart-docs: $(STAMP)
	$(BIN)/python scripts/chart_readme.py

# Build the image with docker (running daemon) or buildah, whichever is present.
# TARGET=operator builds the operator image (entitlement-sidecar-operator:VERSION), TARGET=emulator
# the Metering emulator alone (entitlement-sidecar-emulator:VERSION);
# EXTRAS=operator adds the operator to the sidecar image; IMAGE=name:tag overrides the name;
# IMAGE_POLICY=permissive bakes the permissive image policy (tests and e2e runs only).
EXTRAS ?=
TARGET ?= sidecar
IMAGE_POLICY ?= release
IMAGE ?= entitlement-sidecar$(if $(filter-out sidecar,$(TARGET)),-$(TARGET)):$(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' entitlement_sidecar/__init__.py)
image:
	@if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then \
	  docker build --build-arg EXTRAS=$(EXTRAS) --build-arg POLICY=$(IMAGE_POLICY) --target $(TARGET) -t $(IMAGE) . ; \
	elif command -v buildah >/dev/null 2>&1; then \
	  buildah bud --format docker --build-arg EXTRAS=$(EXTRAS) --build-arg POLICY=$(IMAGE_POLICY) --target $(TARGET) -t $(IMAGE) . ; \
	else \
	  echo "make image: no container builder here: neither docker (with a running daemon) nor buildah was found." >&2; \
	  echo "Install one (e.g. apt-get install buildah) or build elsewhere with: docker build -t $(IMAGE) ." >&2; \
	  exit 1; \
	fi

# Optional smoke build without a registry: debootstrap a Debian base with python3, build the
# Dockerfile on it with buildah (chroot isolation, vfs), run it as 65532 (register + check --verify
# against the emulator on loopback). Root, 3-4 min;
# needs `apt-get install buildah debootstrap`. Not part of `make test`.
.PHONY: image-smoke
image-smoke:
	scripts/image_smoke.sh

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
