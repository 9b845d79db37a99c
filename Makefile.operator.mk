# Operator targets: CRD generation, the demo, a local operator process.
STATE_DIR ?= $(CURDIR)/.testenv

crds: setup ## Regenerate crds/ from the API models (operator/exportjob/spec.py, status.py).
	$(PY) -c "from exportjob.crd import render_crd_yaml; open('crds/exportjob.io_exportjobs.yaml','w').write(render_crd_yaml())"

demo: setup tools ## The main job: local cluster + CRD + operator + examples, then print results (leaves it running).
	hack/demo.sh

operator-stop: ## Stop the operator started by `make demo`.
	@hack/operator.sh stop $(STATE_DIR)

# `make testenv-down` also stops the demo's operator.
testenv-down: operator-stop

.PHONY: crds demo operator-stop
