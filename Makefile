# nodedrop-exec: `make run` starts every service, `make test` runs the tests.
# Both install what they need first (a Python 3.11+ interpreter is enough).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Roots type-checked in strict mode; libs/proto (generated) is excluded in pyproject.
TYPED := libs/common libs/engine libs/contract libs/store libs/runtime libs/sandbox libs/client libs/cli services tests
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install proto lint format typecheck buf codegen-check layers deadcode check check-k8s test test-cluster bench soak run clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The stamp makes install idempotent: it reruns only when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed ## create .venv and install the project with dev extras

proto: install ## regenerate libs/proto from protos/
	PYTHON=$(BIN)/python scripts/gen-protos

lint: install ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check --no-cache .

format: install ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install ## mypy (strict) over the project roots
	$(BIN)/mypy $(TYPED)

buf: install ## buf lint and buf format on protos/
	$(BIN)/buf lint protos
	$(BIN)/buf format --diff --exit-code protos

codegen-check: install ## regenerate libs/proto and fail on any difference
	PYTHON=$(BIN)/python scripts/gen-protos
	git diff --exit-code -- libs/proto
	@untracked="$$(git ls-files --others --exclude-standard -- libs/proto)"; \
	if [ -n "$$untracked" ]; then echo "untracked generated files:"; echo "$$untracked"; exit 1; fi

layers: install ## import-linter: the dependency rules between packages (pyproject.toml)
	$(BIN)/lint-imports --no-cache

deadcode: install ## vulture: no unused code (framework names in vulture_whitelist.py)
	$(BIN)/vulture

check: lint typecheck buf codegen-check layers deadcode ## every static check CI runs

test: install ## run the test suite (needs Redis and PostgreSQL; see README)
	$(BIN)/pytest $(PYTEST_ARGS)

test-cluster: install ## store, worker and events suites on a private 3-master Redis Cluster
	TEST_REDIS=cluster $(BIN)/pytest tests/store tests/worker tests/events $(PYTEST_ARGS)

check-k8s: install ## render every kustomize overlay and validate it strictly (offline)
	scripts/check-k8s

bench: install ## nodedrop-exec vs BullMQ, Celery, Dramatiq, arq, RQ, taskiq, saq (BENCH_ARGS=--quick)
	$(BIN)/python bench/peers/run.py $(BENCH_ARGS)

soak: install ## fault-injection soak on separate processes (SOAK_ARGS="--duration 300 --seed 7")
	$(BIN)/python -m tests.soak $(SOAK_ARGS)

run: install ## run every service in one process (nodedrop dev)
	$(BIN)/nodedrop dev

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
