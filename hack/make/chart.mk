# Helm chart and container image checks (docs/install.md);
# included by the top-level Makefile.
# bin/helm is built (or taken from the cache) on first use.

.PHONY: chart-sync chart-sync-check chart-lint chart-template chart-check helm-present image-install-check

$(HELM):
	hack/build-tools.sh helm

helm-present: | $(HELM)

chart-sync: ## Copy crds/, rules/ and dashboards/ into the chart's files/.
	hack/sync-chart.sh

chart-sync-check: ## Fail if the chart's copies differ from crds/, rules/, dashboards/.
	hack/check-chart-sync.sh

chart-lint: helm-present ## helm lint with default values, with every toggle on, and in namespaced mode.
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) -f $(CHART_ALL_TOGGLES)
	$(HELM) lint --strict $(CHART) -f $(CHART_ALL_TOGGLES) --set 'watchNamespaces={team-a,team-b}'

chart-template: helm-present ## helm template with default values, every toggle on, and namespaced mode.
	$(HELM) template exportjob-operator $(CHART) --namespace exportjob-system > /dev/null
	$(HELM) template exportjob-operator $(CHART) --namespace exportjob-system -f $(CHART_ALL_TOGGLES) > /dev/null
	$(HELM) template exportjob-operator $(CHART) --namespace exportjob-system -f $(CHART_ALL_TOGGLES) \
	  --set 'watchNamespaces={team-a,team-b}' > /dev/null
	@echo "chart renders: default values, every toggle on, namespaced mode"

chart-check: chart-sync-check chart-lint chart-template ## Sync check + helm lint + helm template (default and every toggle on).

image-install-check: ## Prove the Dockerfile's install steps in a fresh venv (no Docker needed).
	hack/check-dockerfile-install.sh
