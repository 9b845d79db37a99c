# The real node (docs/devcluster.md, "A real node"); included by the top-level Makefile.
#
#   make realnode-tools   build/cache kubelet, containerd, runc, CNI plugins, registry, buildkit
#   make realnode-up      control plane + real node + registry + image + chart (last line KUBECONFIG=...)
#   make realnode-down    stop it; no process, mount or cgroup is left
#   make realnode-test    the end-to-end suite on it (pytest -m realnode)

.PHONY: realnode-tools realnode-up realnode-down realnode-status realnode-test

realnode-tools: ## Build (or reuse from the cache) the real node's Go tools into ./bin.
	hack/build-tools.sh realnode

# Build only what is missing (as for the dev cluster's binaries).
$(REALNODE_BINS):
	hack/build-tools.sh $(notdir $@)

realnode-up: setup | $(DEVCLUSTER_BINS) $(HELM) $(REALNODE_BINS) ## Start the control plane + a real node (kubelet, containerd, runc, CNI), build the image, install the chart; last line KUBECONFIG=<path>.
	hack/realnode.sh up $(REALNODE_DIR)

realnode-down: ## Stop the real node and its control plane; nothing is left running or mounted.
	hack/realnode.sh down $(REALNODE_DIR)

realnode-status: ## Show the real node's processes and Node.
	hack/realnode.sh status $(REALNODE_DIR)

realnode-test: setup system-deps | $(DEVCLUSTER_BINS) $(HELM) $(REALNODE_BINS) ## Run the end-to-end suite on a real node (pytest -m realnode; starts and stops its own node).
	$(PYTEST) -q -m realnode tests/realnode
