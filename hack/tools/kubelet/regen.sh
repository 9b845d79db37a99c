#!/usr/bin/env bash
# Regenerates go.mod/go.sum of the kubelet's wrapper module for a Kubernetes
# release, with hack/tools/kube/regen.sh: a separate wrapper, so the kubelet's
# extra dependencies never change the API server's cache key.
#
# Usage: hack/tools/kubelet/regen.sh v1.36.3
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/../kube/regen.sh" "${1:?usage: regen.sh vMAJOR.MINOR.PATCH}" "$here"
