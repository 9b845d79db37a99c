//go:build tools

// Package tools pins promtool; prometheus' go.mod has replace/exclude lines,
// so `go install` of it is refused and this wrapper module builds it instead.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
