# One home for the checks CI runs. `make check` = lint + types + tests.
PY ?= python3

.PHONY: lint typecheck test check bench rules-check

lint:
	$(PY) -m ruff check service tests bench
	$(PY) -m ruff format --check service tests bench

typecheck:
	$(PY) -m mypy

test:
	$(PY) -m pytest

rules-check:
	$(PY) -m rarewatch rules check rules/

check: lint typecheck rules-check test

bench:
	$(PY) bench/run.py
