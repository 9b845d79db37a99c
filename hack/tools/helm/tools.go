//go:build tools

// Package tools pins helm with a go.sum, like the other tools.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
