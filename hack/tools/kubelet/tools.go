//go:build tools

// Package tools pins the kubelet of the real node (docs/devcluster.md, "A real
// node"); its own wrapper so its dependencies never change the control plane's
// cache key. hack/build-tools.sh builds it.
package tools

import _ "k8s.io/kubernetes/cmd/kubelet"
