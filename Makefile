# The two commands of README.md. Each one installs what it needs first (scripts/setup).
.PHONY: run test setup bench

setup:
	./scripts/setup

# Exit status 1 means the run completed and found failures: the bundle and reports are the
# product, so make succeeds; 2 (usage or infrastructure error) fails.
run: setup
	@.venv/bin/pcert run $(ARGS); status=$$?; \
	if [ $$status -eq 1 ]; then echo "pcert: the run found failures: see the reports above"; fi; \
	[ $$status -le 1 ]

test: setup
	.venv/bin/python -m pytest -q $(ARGS)

bench: setup
	.venv/bin/python bench/run_all.py
