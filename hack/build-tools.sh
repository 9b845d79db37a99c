#!/usr/bin/env bash
# Builds the Go-built tools the project tests against and links them into ./bin.
#
# Every tool is built from a pinned wrapper module under hack/tools/<name>
# (go.mod + go.sum), with the Go toolchain and the Go module proxy only.  The
# binaries are cached outside the repository, keyed by tool, version and a
# digest of the wrapper's go.sum, so a fresh clone on the same machine (CI)
# reuses them and nothing built is ever committed.
#
#   hack/build-tools.sh                 # build what is missing, link all into ./bin
#   hack/build-tools.sh etcd helm       # only these (etcd kube-apiserver kube-controller-manager helm promtool
#                                       # prometheus dashboard-lint)
#   hack/build-tools.sh realnode        # the real node's tools (kubelet, containerd, runc, CNI, registry, buildkit)
#   EXPORTJOB_TOOLS_CACHE=/path ...     # cache root (default ~/.cache/exportjob-operator/tools)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache_root=${EXPORTJOB_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/exportjob-operator/tools}
bin_dir="$repo/bin"
mkdir -p "$bin_dir" "$cache_root"
export GOFLAGS="${GOFLAGS:-} -trimpath -buildvcs=false"
export CGO_ENABLED=0

log() { printf '[build-tools] %s\n' "$*" >&2; }

module_version() {  # module_version WRAPPER_DIR MODULE_PATH
  (cd "$1" && go list -m -f '{{.Version}}' "$2")
}

# [TOOL_TAGS=tag,...] [TOOL_SOURCES="file..."] build_tool NAME WRAPPER PACKAGE VERSION LDFLAGS [TAGS] [CGO_ENABLED]
# Build tags (either form), cgo and TOOL_SOURCES (a tool of our own: its Go sources) are part of the cache key.
build_tool() {
  local name=$1 wrapper=$2 package=$3 version=$4 ldflags=$5 tags=${6:-} cgo=${7:-0}
  local env_tags=${TOOL_TAGS:-} sources=${TOOL_SOURCES:-}
  local digest key target started elapsed
  # shellcheck disable=SC2086  # $sources is a list of paths
  digest=$( { cat "$repo/hack/tools/$wrapper/go.sum" "$repo/hack/tools/$wrapper/go.mod"; echo "$ldflags";
              [ -z "$tags$cgo" ] || [ "$tags$cgo" = 0 ] || echo "tags=$tags cgo=$cgo"
              [ -z "$env_tags" ] || echo "tags $env_tags"
              [ -z "$sources" ] || cat $sources; } | sha256sum | cut -c1-12)
  key="$name-$version-$(go env GOVERSION)-$digest"
  target="$cache_root/$key/$name"
  if [ ! -x "$target" ]; then
    log "building $name $version (cache miss: $key); the first build of the Kubernetes components takes many minutes"
    started=$(date +%s)
    mkdir -p "$cache_root/$key"
    (cd "$repo/hack/tools/$wrapper" && CGO_ENABLED=$cgo nice -n 10 go build -tags "${tags:-$env_tags}" -ldflags "$ldflags" -o "$target.tmp" "$package") &
    local pid=$!
    local ticks=0
    while kill -0 "$pid" 2>/dev/null; do
      sleep 1
      ticks=$((ticks + 1))
      if [ $((ticks % 30)) -eq 0 ] && kill -0 "$pid" 2>/dev/null; then
        log "  still building $name ($(( $(date +%s) - started ))s)"
      fi
    done
    wait "$pid"
    mv "$target.tmp" "$target"
    elapsed=$(( $(date +%s) - started ))
    log "built $name $version in ${elapsed}s"
    echo "$elapsed" > "$cache_root/$key/build-seconds"
  fi
  ln -sfn "$target" "$bin_dir/$name"
  log "$name $version -> bin/$name"
}

kube_ldflags() {
  local v=$1 major minor
  major=${v#v}; major=${major%%.*}
  minor=${v#v*.}; minor=${minor%%.*}
  local flags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

# The version string Prometheus' own release build stamps: module v0.3MM.P is release 3.MM.P.
prometheus_ldflags() {
  local v=$1 minor patch
  minor=${v#v0.}; minor=${minor%%.*}; patch=${v##*.}
  echo "-s -w -X github.com/prometheus/common/version.Version=3.$((minor - 300)).$patch"
}

# The real node (docs/devcluster.md, "A real node"; hack/realnode.sh): built only on request.
realnode_tools=(kubelet runc containerd containerd-shim-runc-v2 ctr cni-bridge cni-loopback cni-host-local
  registry buildkitd buildctl)

wanted=()
for arg in "$@"; do
  if [ "$arg" = realnode ]; then wanted+=("${realnode_tools[@]}"); else wanted+=("$arg"); fi
done
[ ${#wanted[@]} -gt 0 ] || wanted=(etcd kube-apiserver kube-controller-manager helm promtool prometheus dashboard-lint)

for tool in "${wanted[@]}"; do
  case "$tool" in
    etcd)
      v=$(module_version "$repo/hack/tools/etcd" go.etcd.io/etcd/server/v3)
      build_tool etcd etcd . "$v" "-s -w" ;;
    kube-apiserver|kube-controller-manager)
      v=$(module_version "$repo/hack/tools/kube" k8s.io/kubernetes)
      build_tool "$tool" kube "k8s.io/kubernetes/cmd/$tool" "$v" "$(kube_ldflags "$v")" ;;
    helm)
      v=$(module_version "$repo/hack/tools/helm" helm.sh/helm/v3)
      # As helm's own Makefile does: the default Kubernetes version (for kubeVersion
      # checks and deprecation lint) is that of the client-go it is built with.
      client_go=$(module_version "$repo/hack/tools/helm" k8s.io/client-go)
      k8s_minor=${client_go#v0.}; k8s_minor=${k8s_minor%%.*}
      flags="-s -w -X helm.sh/helm/v3/internal/version.version=$v"
      for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
        flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
      done
      build_tool helm helm helm.sh/helm/v3/cmd/helm "$v" "$flags" ;;
    promtool)
      v=$(module_version "$repo/hack/tools/promtool" github.com/prometheus/prometheus)
      build_tool promtool promtool github.com/prometheus/prometheus/cmd/promtool "$v" "$(prometheus_ldflags "$v")" ;;
    prometheus)
      # The server, from the module promtool is pinned to (its own wrapper keeps
      # promtool's go.sum and cache key unchanged). Built without the
      # `builtinassets` tag: the web UI's assets are compiled with npm and are
      # not in the Go module, so this binary serves the HTTP API (/api/v1/...)
      # and /metrics but no UI pages (docs/monitoring.md). `remove_all_sd`
      # leaves out the cloud service discoveries (static, file and http
      # remain): the demo and the tests scrape static targets, and the build
      # is minutes shorter.
      v=$(module_version "$repo/hack/tools/prometheus" github.com/prometheus/prometheus)
      pinned=$(module_version "$repo/hack/tools/promtool" github.com/prometheus/prometheus)
      if [ "$v" != "$pinned" ]; then
        log "hack/tools/prometheus pins $v but hack/tools/promtool pins $pinned: keep them equal"; exit 1
      fi
      TOOL_TAGS=remove_all_sd build_tool prometheus prometheus github.com/prometheus/prometheus/cmd/prometheus \
        "$v" "$(prometheus_ldflags "$v")" ;;
    dashboard-lint)
      # Our own small checker (hack/tools/dashboard-lint/main.go) over Grafana's
      # dashboard schema as typed by the grafana-foundation-sdk; keyed by the SDK's version.
      v=$(module_version "$repo/hack/tools/dashboard-lint" github.com/grafana/grafana-foundation-sdk/go)
      TOOL_SOURCES="$(echo "$repo"/hack/tools/dashboard-lint/*.go)" build_tool dashboard-lint dashboard-lint . "$v" "-s -w" ;;
    kubelet)
      # Its own wrapper (same regen.sh logic as hack/tools/kube): the kubelet's extra
      # dependencies must not change the API server's cache key.
      v=$(module_version "$repo/hack/tools/kubelet" k8s.io/kubernetes)
      build_tool kubelet kubelet k8s.io/kubernetes/cmd/kubelet "$v" "$(kube_ldflags "$v")" ;;
    runc)
      # seccomp needs cgo and libseccomp-dev (hack/install-system-deps.sh).
      v=$(module_version "$repo/hack/tools/runc" github.com/opencontainers/runc)
      build_tool runc runc github.com/opencontainers/runc "$v" "-s -w -X main.version=${v#v}" seccomp 1 ;;
    containerd|containerd-shim-runc-v2|ctr)
      v=$(module_version "$repo/hack/tools/containerd" github.com/containerd/containerd/v2)
      build_tool "$tool" containerd "github.com/containerd/containerd/v2/cmd/$tool" "$v" \
        "-s -w -X github.com/containerd/containerd/v2/version.Version=$v" "no_btrfs no_devmapper no_zfs" ;;
    cni-bridge|cni-loopback|cni-host-local)
      v=$(module_version "$repo/hack/tools/cni-plugins" github.com/containernetworking/plugins)
      case $tool in cni-host-local) pkg=ipam/host-local ;; *) pkg=main/${tool#cni-} ;; esac
      build_tool "$tool" cni-plugins "github.com/containernetworking/plugins/plugins/$pkg" "$v" \
        "-s -w -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$v" ;;
    registry)
      v=$(module_version "$repo/hack/tools/registry" github.com/distribution/distribution/v3)
      build_tool registry registry github.com/distribution/distribution/v3/cmd/registry "$v" \
        "-s -w -X github.com/distribution/distribution/v3/version.version=$v" ;;
    buildkitd|buildctl)
      v=$(module_version "$repo/hack/tools/buildkit" github.com/moby/buildkit)
      build_tool "$tool" buildkit "github.com/moby/buildkit/cmd/$tool" "$v" \
        "-s -w -X github.com/moby/buildkit/version.Version=$v" ;;
    *) log "unknown tool: $tool"; exit 2 ;;
  esac
done
