# The two commands a newcomer needs: `make demo` and `make test`. Both set up first.
.PHONY: setup demo test unit lint-code bench slurm clean

setup:
	@bash scripts/setup.sh

# A one-node Slurm cluster on this machine (root; idempotent) for exported CWL under Toil.
slurm:
	@bash scripts/slurm.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	.venv/bin/python -m pytest -q

unit: setup
	.venv/bin/python -m pytest -q tests/unit

lint-code:
	.venv/bin/ruff check gefreg tests benchmarks
	.venv/bin/ruff format --check gefreg tests benchmarks
	.venv/bin/mypy
	.venv/bin/lint-imports

bench: setup
	.venv/bin/python benchmarks/run_all.py

clean:
	rm -rf .gefreg .pytest_cache .hypothesis
