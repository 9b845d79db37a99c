# Monitoring checks: Prometheus rules, their promtool unit tests and the Grafana
# dashboard's queries. Included by the top-level Makefile; also usable alone:
#   make -f Makefile.monitoring.mk rules-check
# promtool is built by `make tools` (hack/build-tools.sh) into bin/.

PROMTOOL ?= bin/promtool
PY ?= .venv/bin/python
MONITORING_RULES ?= rules/exportjob.rules.yml
MONITORING_RULE_TESTS ?= rules/exportjob.test.yml
MONITORING_DASHBOARDS ?= dashboards/exportjob-operator.json

.PHONY: rules-check rules-lint rules-test dashboard-check promtool-present

promtool-present:
	@test -x "$(PROMTOOL)" || { echo "$(PROMTOOL) not found: run 'make tools' first" >&2; exit 1; }

## rules-lint: promtool check rules (syntax, PromQL, duplicate rules)
rules-lint: promtool-present
	$(PROMTOOL) check rules $(MONITORING_RULES)

## rules-test: promtool unit tests of every alert and recording rule
rules-test: promtool-present
	$(PROMTOOL) test rules $(MONITORING_RULE_TESTS)

## dashboard-check: every dashboard panel query parses (loaded as recording rules)
dashboard-check: promtool-present
	$(PY) hack/check-dashboard-queries.py --promtool $(PROMTOOL) $(MONITORING_DASHBOARDS)

## rules-check: all of the above
rules-check: rules-lint rules-test dashboard-check
