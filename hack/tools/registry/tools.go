//go:build tools

// Package tools pins the real-node component(s) registry (hack/build-tools.sh builds them; docs/devcluster.md).
package tools

import (
	_ "github.com/distribution/distribution/v3/cmd/registry"
)
