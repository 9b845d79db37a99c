# The fault suite (docs/reliability.md). Included by the Makefile. It starts its own
# local control plane and kills/stops its components, the operator, workers and
# PostgreSQL; `make test` runs it too. CHAOS_OUTAGE_SECONDS=100 gives the long outage.

chaos: setup system-deps | $(DEVCLUSTER_BINS) ## The fault suite alone (pytest -m chaos): kills, outages, deletions; prints the figures table.
	$(PYTEST) -q -m chaos

.PHONY: chaos
