# Dev cluster targets (docs/devcluster.md); included by the top-level Makefile.
#
#   make tools           build/cache the Go-built tools and link them into ./bin
#   make testenv-up      start the local control plane + process kubelet (prints KUBECONFIG=...)
#   make testenv-status  show its processes and health
#   make testenv-down    stop everything it started

.PHONY: tools testenv-up testenv-down testenv-status

tools: ## Build (or reuse from the cache) etcd, kube-apiserver, kube-controller-manager, helm, promtool, prometheus, dashboard-lint into ./bin.
	hack/build-tools.sh

# Build only what is missing (a dangling link, e.g. after the cache was wiped, counts as missing).
$(DEVCLUSTER_BINS):
	hack/build-tools.sh $(notdir $@)

testenv-up: setup | $(DEVCLUSTER_BINS) ## Start the local control plane + process kubelet; last line is KUBECONFIG=<path>.
	$(DEVCLUSTER) up --state-dir $(TESTENV_DIR)

testenv-down: setup ## Stop every process of the local cluster.
	$(DEVCLUSTER) down --state-dir $(TESTENV_DIR)

testenv-status: setup ## Show the local cluster's processes and health.
	$(DEVCLUSTER) status --state-dir $(TESTENV_DIR)
