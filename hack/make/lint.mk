# Formatting and lint: ruff, configured in pyproject.toml ([tool.ruff]); the same
# checks run in tests/unit/test_lint.py.

lint: setup ## ruff format --check and ruff check over the tree (fix: ruff format . && ruff check --fix .).
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

.PHONY: lint
