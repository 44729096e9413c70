# mldeploy: the two commands are `make demo` and `make test`.
# Every target runs with scripts/lib.sh's environment: .venv/bin and
# .tools/bin first on PATH, the Pulumi file backend under .mldeploy/.
SHELL := /bin/bash
ENV := source scripts/lib.sh &&
STACK ?= local
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: cluster-up cluster-down setup test unit integration demo demo-down bench preview wheel mlflow-ui clean-state help azure-smoke registry-gc

help:
	@echo "make setup        install and start everything (idempotent; seconds when warm)"
	@echo "make demo         setup, pulumi up on stack '$(STACK)', a real prediction"
	@echo "make demo-down    pulumi destroy on stack '$(STACK)'"
	@echo "make preview      Markdown summary of what pulumi up would change on stack '$(STACK)' (exit 0 none, 2 changes, 1 error)"
	@echo "make wheel        build dist/mldeploy-<version>-py3-none-any.whl"
	@echo "make test         setup, unit and integration tests"
	@echo "make unit         unit tests only (no engine, no Docker)"
	@echo "make bench        setup, timings vs Pulumi's floor and raw docker (BENCH_ARGS=--quick); bench/results/"
	@echo "make mlflow-ui    the MLflow UI on 127.0.0.1:5500 over the local model registry"
	@echo "make registry-gc  free the local registry's unreferenced layers (GC_ARGS=--delete-untagged)"
	@echo "make cluster-down stop the embedded Kubernetes cluster (make setup or cluster-up starts it again)"
	@echo "make azure-smoke  the real lifecycle on Azure (needs a login and a subscription; costs money; never run by CI)"

setup:
	@bash scripts/setup.sh

# The azure unit tests run in .venv-azure (the azure extra; scripts/setup.sh), everything else in .venv.
AZURE_TESTS := tests/unit/azure tests/unit/test_azure_stack.py
NOT_AZURE := $(addprefix --ignore=,$(AZURE_TESTS))

# TEST_WORKERS pytest-xdist workers share the tests (tests/conftest.py groups them; on 2 cores 3 measured faster than 2); 0 runs them in one process.
TEST_WORKERS ?= 3
test: setup
	@$(ENV) python -m pytest tests $(NOT_AZURE) -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS) && \
	  .venv-azure/bin/python -m pytest $(AZURE_TESTS) $(PYTEST_ARGS)

# The embedded Kubernetes cluster (the kubernetes target); `make setup` starts it too.
cluster-up:
	@$(ENV) bash scripts/kubernetes/build.sh && bash scripts/kubernetes/up.sh

cluster-down:
	@$(ENV) bash scripts/kubernetes/down.sh

unit:
	@$(ENV) python -m pytest tests/unit $(NOT_AZURE) $(PYTEST_ARGS) && .venv-azure/bin/python -m pytest $(AZURE_TESTS) $(PYTEST_ARGS)

# Not part of `make test` or CI: creates real Azure resources (see the README's Azure section).
azure-smoke: setup
	@$(ENV) bash scripts/azure_smoke.sh

integration: setup
	@$(ENV) python -m pytest tests/integration $(PYTEST_ARGS)

demo: setup
	@$(ENV) bash scripts/demo.sh $(STACK)

bench: setup
	@$(ENV) python bench/run.py $(BENCH_ARGS)

demo-down:
	@$(ENV) cd stacks/demo && pulumi destroy --yes --skip-preview --stack $(STACK)

# The pull-request summary of `pulumi preview --diff --json` on the demo stack.
# Exit status: 0 nothing would change, 2 something would, 1 the preview failed.
# PREVIEW_ARGS="--output preview.md" also writes it to a file.
PREVIEW_ARGS ?=
preview:
	@$(ENV) python stacks/demo/make_model.py >/dev/null && \
	  python scripts/preview_summary.py --cwd stacks/demo --stack $(STACK) $(PREVIEW_ARGS)

# A wheel of mldeploy for other projects (stacks/consumer/requirements.txt finds it in dist/).
wheel:
	@$(ENV) rm -rf build && python -m build --wheel --outdir dist . && rm -rf build

mlflow-ui:
	@$(ENV) v=$$(python -c "import importlib.metadata as m; print(m.version('mlflow-skinny'))") && \
	  (python -c "import importlib.metadata as m; m.version('mlflow')" 2>/dev/null || pip install -q "mlflow==$$v") && \
	  mkdir -p "$$MLDEPLOY_HOME/mlflow" && \
	  exec mlflow ui --host 127.0.0.1 --port 5500 \
	    --backend-store-uri "sqlite:///$$MLDEPLOY_HOME/mlflow/mlflow.db" \
	    --default-artifact-root "$$MLDEPLOY_HOME/mlflow/artifacts"

# Garbage-collect the local registry (writes get 503 + Retry-After meanwhile; see backends/registry_gc.py).
GC_ARGS ?=
registry-gc:
	@$(ENV) python -m mldeploy.backends.registry_gc $(GC_ARGS)

clean-state:
	@echo "removes $(CURDIR)/.mldeploy (registry storage, Pulumi state, logs, caches)"; \
	pkill -f "docker-registry serve $(CURDIR)/.mldeploy" || true; \
	[ -f .mldeploy/registry/nginx.pid ] && kill $$(cat .mldeploy/registry/nginx.pid) || true; \
	docker rm -f mldeploy-wheelhouse-$${MLDEPLOY_REGISTRY_PORT:-5000} >/dev/null 2>&1 || true; \
	rm -rf .mldeploy
