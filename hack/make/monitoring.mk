# Monitoring checks: Prometheus rules, their promtool unit tests and the Grafana
# dashboard's queries. promtool is built (or taken from the cache) on first use.

.PHONY: rules-check rules-lint rules-test dashboard-check promtool-present

$(PROMTOOL):
	hack/build-tools.sh promtool

promtool-present: | $(PROMTOOL)

rules-lint: promtool-present ## promtool check rules (syntax, PromQL, duplicate rules)
	$(PROMTOOL) check rules $(MONITORING_RULES)

rules-test: promtool-present ## promtool unit tests of every alert and recording rule
	$(PROMTOOL) test rules $(MONITORING_RULE_TESTS)

dashboard-check: setup promtool-present ## every dashboard panel query parses (loaded as recording rules)
	$(PY) hack/check-dashboard-queries.py --promtool $(PROMTOOL) $(MONITORING_DASHBOARDS)

rules-check: rules-lint rules-test dashboard-check ## Every promtool check: rules, their unit tests, the dashboard's queries.
