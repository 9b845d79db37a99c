# Operator targets: CRD generation, the demo, a local operator process.

crds: setup ## Regenerate crds/ from the API models (operator/exportjob/spec.py, status.py).
	$(VENV)/bin/exportjob crd > crds/exportjob.io_exportjobs.yaml
	hack/sync-chart.sh

demo: setup | $(DEVCLUSTER_BINS) $(PROMETHEUS) ## The main job: local cluster + CRD + operator + Prometheus + examples, then results and figures (leaves it running).
	EXPORTJOB_STATE_DIR=$(abspath $(TESTENV_DIR)) hack/demo.sh

operator-stop: ## Stop the operator started by `make demo`.
	@hack/operator.sh stop $(abspath $(TESTENV_DIR))

# `make testenv-down` also stops the demo's operator.
testenv-down: operator-stop

.PHONY: crds demo operator-stop
