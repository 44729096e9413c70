# mldeploy: the two commands are `make demo` and `make test`.
# Every target runs with scripts/lib.sh's environment: .venv/bin and
# .tools/bin first on PATH, the Pulumi file backend under .mldeploy/.
SHELL := /bin/bash
ENV := source scripts/lib.sh &&
STACK ?= local
PYTEST_ARGS ?=

.PHONY: setup test unit integration demo demo-down mlflow-ui clean-state help

help:
	@echo "make setup        install and start everything (idempotent; seconds when warm)"
	@echo "make demo         setup, pulumi up on stack '$(STACK)', a real prediction"
	@echo "make demo-down    pulumi destroy on stack '$(STACK)'"
	@echo "make test         setup, unit and integration tests"
	@echo "make unit         unit tests only (no engine, no Docker)"
	@echo "make mlflow-ui    the MLflow UI on 127.0.0.1:5500 over the local model registry"

setup:
	@bash scripts/setup.sh

test: setup
	@$(ENV) python -m pytest tests $(PYTEST_ARGS)

unit:
	@$(ENV) python -m pytest tests/unit $(PYTEST_ARGS)

integration: setup
	@$(ENV) python -m pytest tests/integration $(PYTEST_ARGS)

demo: setup
	@$(ENV) bash scripts/demo.sh $(STACK)

demo-down:
	@$(ENV) cd stacks/demo && pulumi destroy --yes --skip-preview --stack $(STACK)

mlflow-ui:
	@$(ENV) v=$$(python -c "import importlib.metadata as m; print(m.version('mlflow-skinny'))") && \
	  (python -c "import importlib.metadata as m; m.version('mlflow')" 2>/dev/null || pip install -q "mlflow==$$v") && \
	  mkdir -p "$$MLDEPLOY_HOME/mlflow" && \
	  exec mlflow ui --host 127.0.0.1 --port 5500 \
	    --backend-store-uri "sqlite:///$$MLDEPLOY_HOME/mlflow/mlflow.db" \
	    --default-artifact-root "$$MLDEPLOY_HOME/mlflow/artifacts"

clean-state:
	@echo "removes $(CURDIR)/.mldeploy (registry storage, Pulumi state, logs, caches)"; \
	pkill -f "docker-registry serve $(CURDIR)/.mldeploy" || true; \
	[ -f .mldeploy/registry/nginx.pid ] && kill $$(cat .mldeploy/registry/nginx.pid) || true; \
	rm -rf .mldeploy
