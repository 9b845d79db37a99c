//go:build tools

// Package tools pins the real-node component(s) buildkit (hack/build-tools.sh builds them; docs/devcluster.md).
package tools

import (
	_ "github.com/moby/buildkit/cmd/buildkitd"
	_ "github.com/moby/buildkit/cmd/buildctl"
)
