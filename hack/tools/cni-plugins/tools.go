//go:build tools

// Package tools pins the real-node component(s) cni-plugins (hack/build-tools.sh builds them; docs/devcluster.md).
package tools

import (
	_ "github.com/containernetworking/plugins/plugins/main/bridge"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
)
