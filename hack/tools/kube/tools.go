//go:build tools

// Package tools pins the Kubernetes control-plane commands that the
// project's local test cluster runs; hack/build-tools.sh builds them.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
