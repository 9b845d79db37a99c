//go:build tools

// Package tools pins the real-node component(s) containerd (hack/build-tools.sh builds them; docs/devcluster.md).
package tools

import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
