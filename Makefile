# The two commands of README.md. Each one installs what it needs first (scripts/setup).
.PHONY: run test setup bench

setup:
	./scripts/setup

run: setup
	.venv/bin/pcert run $(ARGS)

test: setup
	.venv/bin/python -m pytest -q $(ARGS)

bench: setup
	.venv/bin/python bench/run_all.py
