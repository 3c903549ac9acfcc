.PHONY: run test bench lint
run:    ## install and run the embedded platform (web + worker)
	bash scripts/run.sh
test:   ## install test needs and run the whole suite on both engines
	bash scripts/test.sh
lint:
	.venv/bin/ruff check .
bench:  ## run the benchmarks, each against its baseline in the same run
	.venv/bin/python -m bench.healthz
