# Benchmarks (bench/README.md). Included by the Makefile; `make bench` runs the full sizes
# (~15 min on 2 cores), `make bench-quick` a smoke run at reduced sizes.

bench: setup system-deps ## Start-up; throughput and peak RSS: PostgreSQL (also parallel) and synthetic -> CSV vs psql/csv.writer, PDF (ASCII, 12 scripts) vs LongTable.
	$(PY) bench/run.py --json bench/out/results.json $(BENCH_ARGS)

bench-quick: setup system-deps ## The benchmarks at reduced sizes, one run each (a smoke run).
	$(PY) bench/run.py --quick --repeat 1 $(BENCH_ARGS)

bench-pg-cost: setup system-deps ## PostgreSQL: the server's CPU per COPY statement (psql's vs the worker's) and the time from exec to the COPY.
	$(PY) bench/pg_cost.py $(BENCH_PG_COST_ARGS)

.PHONY: bench bench-quick bench-pg-cost

bench-operator: setup | $(DEVCLUSTER_BINS) ## Operator at scale: writes, CPU and RSS per export, admissions/s, slot latency (bench/README.md).
	$(PY) bench/operator_bench.py --json bench/out/operator.json $(BENCH_OPERATOR_ARGS)

.PHONY: bench-operator
