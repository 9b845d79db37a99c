//go:build tools

// Package tools pins the Prometheus server at the version of promtool
// (hack/tools/promtool; hack/build-tools.sh refuses to build when the two
// differ). A wrapper of its own, rather than a second import in promtool's,
// keeps promtool's go.sum, and so its cache key, unchanged.
package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"
