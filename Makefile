.PHONY: run test lint bench

# Start Redis, the sandbox, a worker and Flower; deliver the seed examples; show what VTEX received.
run:
	bash scripts/run-local.sh

# venv + install, ruff, mypy --strict, then pytest against a Redis of its own on a free port.
test:
	bash scripts/test.sh

lint:
	bash scripts/test.sh --lint-only

# Benchmark vtex-relay against plain Celery (own Redis and sandbox); --quick: make bench ARGS=--quick
bench:
	bash bench/run.sh $(ARGS)
