# One home for the checks CI runs. `make check` = lint + types + tests.
PY ?= python3

.PHONY: lint typecheck test check bench rules-check k8s-rules

lint:
	$(PY) -m ruff check service tests bench
	$(PY) -m ruff format --check service tests bench

typecheck:
	$(PY) -m mypy

test:
	$(PY) -m pytest

rules-check:
	$(PY) -m rarewatch rules check rules/

# deploy/k8s/rules-configmap.yaml from rules/ (tests/e2e/test_k8s.py fails while they differ).
k8s-rules:
	$(PY) -m tests.k8s_layout

check: lint typecheck rules-check test

bench:
	$(PY) bench/run.py
