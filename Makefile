.PHONY: run test test-fast lint bench

# Start Redis, the sandbox, a worker and Flower; deliver the seed examples; show what VTEX received.
run:
	bash scripts/run-local.sh

# venv + install, ruff, mypy --strict, then pytest against a Redis of its own on a free port.
test:
	bash scripts/test.sh

# The edit loop: lint, types, and the tests that start no process (well under a minute).
test-fast:
	bash scripts/test.sh --fast

lint:
	bash scripts/test.sh --lint-only

# Benchmark vtex-relay against plain Celery (own Redis and sandbox); --quick: make bench ARGS=--quick
bench:
	bash bench/run.sh $(ARGS)
