//go:build tools

// Package tools pins the real-node component(s) runc (hack/build-tools.sh builds them; docs/devcluster.md).
package tools

import (
	_ "github.com/opencontainers/runc"
)
