# Every target a contributor needs; `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# pytest-xdist workers: the KubeVirt tier's tests mostly wait on KubeVirt's controllers, so two
# processes (each with its own pair of clusters) share two cores well. TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2

.PHONY: help install test unit example example-json bench release

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install: ## create .venv and install kubectl-dlm with its test tools (editable)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'

test: install ## the whole suite, as CI runs it; builds (or reuses) the test API server and KubeVirt first
	@bin=$$(bash -o pipefail -c 'bash tests/infra/build.sh | tail -n 1') || { \
	  if [ "$${CI:-}" = true ]; then echo "make test: the test API server could not be built" >&2; exit 1; fi; \
	  echo "make test: no test API server; cluster tests will skip" >&2; bin=; }; \
	kv=$$(bash -o pipefail -c 'bash tests/infra/build-kubevirt.sh | tail -n 1') || { \
	  if [ "$${CI:-}" = true ]; then echo "make test: KubeVirt could not be built" >&2; exit 1; fi; \
	  echo "make test: KubeVirt not built; the KubeVirt tier will skip" >&2; kv=; }; \
	MINI_KUBE_BIN=$$bin KUBEVIRT_BIN=$$kv PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25

unit: install ## the fast tier only (no API servers)
	$(PY) -m pytest tests -q --ignore=tests/harness -m 'not cluster' -n $(TEST_WORKERS) --dist loadfile

example: install ## render the built-in example VM
	$(VENV)/bin/kubectl-dlm render --example

example-json: install ## regenerate kubectl_dlm/example.json from example.yaml (what render --example reads)
	$(PY) -c 'import json, sys; from ruamel.yaml import YAML; data = YAML(typ="safe", pure=True).load(open(sys.argv[1], encoding="utf-8")); \
	  open(sys.argv[2], "w", encoding="utf-8").write(json.dumps(data, indent=1, ensure_ascii=False) + "\n")' \
	  kubectl_dlm/example.yaml kubectl_dlm/example.json

bench: install ## startup and render timings (benchmarks/README.md)
	$(PY) benchmarks/run.py

release: ## self-contained kubectl-dlm for this os/arch in dist/, and krew/dlm.yaml filled in from it
	bash packaging/release.sh
