# exportjob-operator — developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY ?= $(VENV)/bin/python
PYTEST ?= $(VENV)/bin/pytest
TESTENV_DIR ?= .testenv
REALNODE_DIR ?= .realnode
REALNODE_BINS := $(addprefix bin/,kubelet runc containerd containerd-shim-runc-v2 ctr cni-bridge cni-loopback \
  cni-host-local registry buildkitd buildctl)
DEVCLUSTER ?= PYTHONPATH=operator $(PY) -m devcluster.cli
DEVCLUSTER_BINS := bin/etcd bin/kube-apiserver bin/kube-controller-manager
HELM ?= bin/helm
PROMTOOL ?= bin/promtool
PROMETHEUS ?= bin/prometheus
DASHBOARD_LINT ?= bin/dashboard-lint
CHART ?= charts/exportjob-operator
CHART_ALL_TOGGLES ?= $(CHART)/ci/all-toggles-values.yaml
MONITORING_RULES ?= rules/exportjob.rules.yml
MONITORING_RULE_TESTS ?= rules/exportjob.test.yml
MONITORING_DASHBOARDS ?= dashboards/exportjob-operator.json
BENCH_ARGS ?=
BENCH_OPERATOR_ARGS ?=
BENCH_DOWNLOAD_ARGS ?=
BENCH_PG_COST_ARGS ?=
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/bin:$(PATH)

.DEFAULT_GOAL := help

help: ## List the targets.
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-22s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## Create the venv with the project and its test tools.

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -U pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[test]'
	touch $@

system-deps: ## Install the Debian packages the tests need (PostgreSQL server, poppler).
	hack/install-system-deps.sh

test: setup system-deps tools ## Run every test (unit, PostgreSQL, local control plane, promtool, helm, image install).
	$(MAKE) --no-print-directory image-install-check
	$(PYTEST) -q

unit: setup ## Run only the pure unit tests.
	$(PYTEST) -q tests/unit

# Each fragment under hack/make/ holds the targets of one area; every variable
# is defined here, once, and every target documents itself with `## ` (make help).
include hack/make/devcluster.mk
include hack/make/monitoring.mk
include hack/make/bench.mk
include hack/make/operator.mk
include hack/make/chart.mk
include hack/make/realnode.mk
include hack/make/chaos.mk
include hack/make/lint.mk
include hack/make/download.mk

.PHONY: help setup system-deps test unit

constraints: setup ## Re-pin every Python dependency into constraints.txt (after changing pyproject.toml).
	{ echo "# Pinned versions of every Python dependency (direct and transitive); used by"; \
	  echo "# 'make setup', CI and the Dockerfile. Regenerate: make constraints"; \
	  $(VENV)/bin/pip freeze --exclude-editable; } > constraints.txt

.PHONY: constraints
