# Monitoring checks: Prometheus rules, their promtool unit tests, the Grafana
# dashboard's queries and schema; the demo's Prometheus server. promtool,
# prometheus and dashboard-lint are built (or taken from the cache) on first use.

.PHONY: rules-check rules-lint rules-test dashboard-check dashboard-lint promtool-present prometheus-stop

$(PROMTOOL):
	hack/build-tools.sh promtool

$(PROMETHEUS):
	hack/build-tools.sh prometheus

$(DASHBOARD_LINT):
	hack/build-tools.sh dashboard-lint

promtool-present: | $(PROMTOOL)

rules-lint: promtool-present ## promtool check rules (syntax, PromQL, duplicate rules)
	$(PROMTOOL) check rules $(MONITORING_RULES)

rules-test: promtool-present ## promtool unit tests of every alert and recording rule
	$(PROMTOOL) test rules $(MONITORING_RULE_TESTS)

dashboard-check: setup promtool-present ## every dashboard panel query parses (loaded as recording rules)
	$(PY) hack/check-dashboard-queries.py --promtool $(PROMTOOL) $(MONITORING_DASHBOARDS)

dashboard-lint: | $(DASHBOARD_LINT) ## the dashboard conforms to Grafana's dashboard schema (grafana-foundation-sdk)
	$(DASHBOARD_LINT) $(MONITORING_DASHBOARDS)

rules-check: rules-lint rules-test dashboard-check dashboard-lint ## Every offline monitoring check: rules, their unit tests, the dashboard's queries and schema.

prometheus-stop: setup ## Stop the Prometheus server started by `make demo`.
	@PYTHONPATH=operator $(PY) -m devcluster.promcli stop --state-dir $(TESTENV_DIR)

# `make testenv-down` also stops the demo's Prometheus.
testenv-down: prometheus-stop
