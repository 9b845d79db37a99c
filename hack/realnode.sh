#!/usr/bin/env bash
# A real node for the dev cluster: kubelet + containerd + runc + CNI bridge, a
# loopback registry, the image built from the repository's Dockerfile with
# buildkit, and the Helm chart installed with it (docs/devcluster.md, "A real node").
#
#   hack/realnode.sh up   [STATE_DIR]   # default .realnode; last line: KUBECONFIG=<path>
#   hack/realnode.sh down [STATE_DIR]   # every process, mount and cgroup it made is gone
#   hack/realnode.sh status [STATE_DIR]
#   hack/realnode.sh image [STATE_DIR]  # only registry + base image + Dockerfile build (down stops it)
#
# Layout (kind-style, the host is never changed):
# * the control plane is devcluster's (python -m devcluster.cli up --no-kubelet) on
#   the host's loopback, in STATE/cluster;
# * the node is a network + mount namespace pair held by one `sleep` process
#   (unshare --net --mount --propagation private): containerd, the kubelet, the
#   node services (devcluster.nodeservices: pod binding, ClusterIP relays, DNS) and
#   the node-side relays run in it (nsenter). /run, /var/log and /var/lib/cni are
#   private to it (tmpfs /var/lib: stray writes never reach the host); everything else lives under STATE/node;
# * host <-> node traffic goes through unix sockets (socat pairs), never through a
#   host interface: the API server is reachable in the node at 127.0.0.1:<its port>
#   (for the kubelet) and at 10.0.0.1:443 (the `kubernetes` Service, for Pods); the
#   registry at 127.0.0.1:<its port>; the kubelet's port is relayed to the host's
#   127.0.0.1:<same port> for `kubectl logs/exec`;
# * the registry (distribution) and buildkitd (own mount namespace, host network for
#   RUN steps that need PyPI) run on the host's loopback;
# * every process of the node, its containers and buildkitd run in one dedicated
#   cgroup per v1 hierarchy, /sys/fs/cgroup/<controller>/exportjob-realnode-<id>;
#   `down` kills what is in it and removes it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/bin
py=${PY:-$repo/.venv/bin/python}
helm=${HELM:-$bin/helm}
cmd=${1:?usage: realnode.sh up|down|status [STATE_DIR]}
[ "$(id -u)" = 0 ] || { echo "[realnode] needs root (namespaces, mounts, cgroups)" >&2; exit 1; }
state=$(mkdir -p "${2:-$repo/.realnode}" && cd "${2:-$repo/.realnode}" && pwd)
id=$(printf '%s' "$state" | sha256sum | cut -c1-8)
cg_name=exportjob-realnode-$id
# The API server (host network) reaches a kubelet at its Hostname address, which is the
# node name; "localhost" is the one name that resolves to the host's loopback everywhere,
# where the relay to the kubelet's port listens. (The node's InternalIP, 10.99.0.1 on the
# node's lo, is only routable inside the node: the kubelet refuses a loopback node IP.)
node_name=localhost
node_ip=10.99.0.1
image_tag=dev
release=exportjob
release_ns=exportjob-system
run=$state/run logs=$state/logs node=$state/node
export PATH="$bin:$PATH" KUBECONFIG="$state/cluster/kubeconfig"

log() { printf '[realnode] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

# The v1 hierarchies this host mounts (cgroup v2 is not used by the kubelet here).
controllers() {
  awk '$3 == "cgroup" {print $2}' /proc/self/mounts | sed 's#^/sys/fs/cgroup/##'
}

cgroup_create() {  # cgroup_create SUBPATH: the cgroup in every hierarchy
  local sub=$1 c d parent
  for c in $(controllers); do
    d=/sys/fs/cgroup/$c/$sub
    [ -d "$d" ] && continue
    mkdir -p "$d"
    if [ -f "$d/cpuset.cpus" ]; then  # cpuset: empty until set, copy the parent's along the path
      parent=/sys/fs/cgroup/$c
      local part path=$parent
      for part in ${sub//\// }; do
        path=$path/$part
        [ -s "$path/cpuset.cpus" ] && [ "$(cat "$path/cpuset.cpus")" != "" ] || cat "$(dirname "$path")/cpuset.cpus" > "$path/cpuset.cpus"
        [ "$(cat "$path/cpuset.mems")" != "" ] || cat "$(dirname "$path")/cpuset.mems" > "$path/cpuset.mems"
      done
    fi
  done
}

# A command run with its process moved into cgroup SUBPATH first (all hierarchies).
in_cgroup() {  # in_cgroup SUBPATH CMD...
  local sub=$1; shift
  local c
  for c in $(controllers); do echo $BASHPID > "/sys/fs/cgroup/$c/$sub/cgroup.procs"; done
  exec "$@"
}

start() {  # start NAME SUBCGROUP CMD...: a detached process, its pid in run/NAME.pid
  local name=$1 sub=$2; shift 2
  ( in_cgroup "$cg_name/$sub" setsid "$@" ) >"$logs/$name.log" 2>&1 </dev/null &
  echo $! > "$run/$name.pid"
}

holder_pid() { cat "$run/node-holder.inner" 2>/dev/null; }

node_start() {  # node_start NAME CMD...: like start, inside the node's namespaces
  local name=$1; shift
  start "$name" node nsenter -t "$(holder_pid)" -n -m -- "$@"
}

alive() { [ -f "$run/$1.pid" ] && kill -0 "$(cat "$run/$1.pid")" 2>/dev/null; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_until() {  # wait_until SECONDS DESCRIPTION CMD...: poll CMD (0.2 s) until it succeeds
  local limit=$1 what=$2; shift 2
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -gt "$deadline" ]; then
      log "timed out after ${limit}s waiting for $what"; return 1
    fi
    sleep 0.2
  done
}

# ------------------------------------------------------------------ teardown
# Every hierarchy, the cgroup2 one (/sys/fs/cgroup/unified) included: runc mirrors its
# v1 cgroups there on hybrid hosts.
hierarchies() {
  awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts | sed 's#^/sys/fs/cgroup/##'
}

cgroup_pids() {
  local c
  for c in $(hierarchies); do
    [ -d "/sys/fs/cgroup/$c/$cg_name" ] && find "/sys/fs/cgroup/$c/$cg_name" -name cgroup.procs -exec cat {} + 2>/dev/null
  done | sort -u
}

down() {
  local pids tries=0
  if alive kubelet; then  # let the kubelet stop cleanly first (it owns the containers)
    kill -TERM "$(cat "$run/kubelet.pid")" 2>/dev/null || true
  fi
  pids=$(cgroup_pids)
  if [ -n "$pids" ]; then kill -TERM $pids 2>/dev/null || true; fi
  while pids=$(cgroup_pids) && [ -n "$pids" ]; do
    tries=$((tries + 1))
    [ $tries -gt 10 ] && kill -KILL $pids 2>/dev/null || true
    if [ $tries -gt 100 ]; then log "error: processes left in cgroup $cg_name: $pids"; return 1; fi
    sleep 0.1
  done
  # host-side processes outside the cgroup: none are started outside it; pid files are stale now
  local c
  for c in $(hierarchies); do
    [ -d "/sys/fs/cgroup/$c/$cg_name" ] && find "/sys/fs/cgroup/$c/$cg_name" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  for c in $(hierarchies); do
    [ ! -d "/sys/fs/cgroup/$c/$cg_name" ] || { log "error: cgroup /sys/fs/cgroup/$c/$cg_name could not be removed"; return 1; }
  done
  if [ -f "$state/cluster/cluster.json" ] || [ -d "$state/cluster/run" ]; then
    (cd "$repo" && PYTHONPATH=operator "$py" -m devcluster.cli down --state-dir "$state/cluster") >&2 || true
  fi
  if grep -q " $state" /proc/self/mounts; then log "error: mounts left under $state"; return 1; fi
  rm -f "$run"/*.pid "$run"/*.inner "$run"/*.sock "$node"/sock/*.sock 2>/dev/null || true
  log "down: no process, mount or cgroup of $state is left"
}

# ------------------------------------------------------------------ bring-up
write_node_config() {
  local api_port=$1 reg_port=$2 kubelet_port=$3
  mkdir -p "$node"/{containerd,kubelet,varlog,cni/bin,cni/net.d,cni/ipam,certs.d/127.0.0.1:$reg_port,pods-logs,sock}
  for p in bridge loopback host-local; do ln -sfn "$bin/cni-$p" "$node/cni/bin/$p"; done
  cat > "$node/containerd/config.toml" <<EOF
version = 3
root = "$node/containerd/root"
state = "$node/containerd/state"
temp = "$node/containerd/tmp"
[grpc]
  address = "$node/sock/containerd.sock"
[ttrpc]
  address = "$node/sock/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$node/containerd/opt"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "127.0.0.1:$reg_port/pause:$image_tag"
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "$node/certs.d"
[plugins."io.containerd.cri.v1.runtime"]
  enable_selinux = false
  # root here lacks CAP_SYS_RESOURCE (no negative oom_score_adj): never below containerd's own
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$bin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["$node/cni/bin"]
    conf_dir = "$node/cni/net.d"
[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
EOF
  cat > "$node/certs.d/127.0.0.1:$reg_port/hosts.toml" <<EOF
server = "http://127.0.0.1:$reg_port"
[host."http://127.0.0.1:$reg_port"]
  capabilities = ["pull", "resolve"]
EOF
  cat > "$node/cni/net.d/10-realnode.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "realnode",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}],
               "dataDir": "$node/cni/ipam"}
    }
  ]
}
EOF
  echo "nameserver 10.0.0.10" > "$node/resolv.conf"
  cat > "$node/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
# Reached only through the relay on the host's loopback; the API server presents no
# client certificate to kubelets in the dev cluster (logs/exec still go through it).
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
cgroupRoot: /$cg_name
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$node/sock/containerd.sock
podLogsDir: $node/pods-logs
resolvConf: $node/resolv.conf
clusterDNS: [10.0.0.10]
clusterDomain: cluster.local
registerNode: true
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
syncFrequency: 5s
fileCheckFrequency: 5s
nodeStatusUpdateFrequency: 5s
EOF
}

push_images() {  # the Debian base (the Dockerfile's PYTHON_IMAGE) and the pause image
  local reg=$1 base t0
  t0=$(now)
  base=$("$repo/hack/realnode/base-image.sh")
  "$py" "$repo/hack/realnode/push-image.py" --registry "$reg" --layer "$base" \
    --image debian-python:bookworm --cmd python3 >&2
  "$py" "$repo/hack/realnode/push-image.py" --registry "$reg" --layer "$base" \
    --image "pause:$image_tag" --entrypoint /bin/sleep --cmd infinity >&2
  log "base and pause images pushed in $(since "$t0")s"
}

build_image() {  # the repository's Dockerfile, unchanged, with buildkit
  local reg=$1 t0
  t0=$(now)
  mkdir -p "$state/buildkit"
  cat > "$state/buildkit/buildkitd.toml" <<EOF
[registry."$reg"]
  http = true
  insecure = true
[worker.oci]
  enabled = true
  binary = "$bin/runc"
  gc = true
  gckeepstorage = "4GB"
  defaultCgroupParent = "/$cg_name/buildkit/builds"
[worker.containerd]
  enabled = false
EOF
  cgroup_create "$cg_name/buildkit"
  start buildkitd buildkit unshare --mount --propagation private -- \
    "$bin/buildkitd" --config "$state/buildkit/buildkitd.toml" --root "$state/buildkit/root" \
    --addr "unix://$run/buildkitd.sock" --oci-worker-net=host
  wait_until 60 buildkitd "$bin/buildctl" --addr "unix://$run/buildkitd.sock" debug workers
  # `# syntax=` would pull docker/dockerfile from Docker Hub: any `cmdline` option makes the
  # built-in frontend skip that, with the Dockerfile and the context unchanged.
  "$bin/buildctl" --addr "unix://$run/buildkitd.sock" build \
    --frontend dockerfile.v0 --local context="$repo" --local dockerfile="$repo" \
    --opt cmdline=dockerfile.v0 \
    --opt build-arg:PYTHON_IMAGE="$reg/debian-python:bookworm" \
    --output "type=image,name=$reg/exportjob-operator:$image_tag,push=true,registry.insecure=true" \
    --progress plain >"$logs/image-build.log" 2>&1 || { tail -30 "$logs/image-build.log" >&2; die "image build failed"; }
  # buildkitd is only needed for the build (down sweeps its cgroup in any case)
  kill -TERM "$(cat "$run/buildkitd.pid")" 2>/dev/null || true
  rm -f "$run/buildkitd.pid"
  log "image $reg/exportjob-operator:$image_tag built from the Dockerfile and pushed in $(since "$t0")s"
}

make_pvs() {  # static PersistentVolumes (hostPath under STATE/node/pv), StorageClass realnode-static
  local i
  {
    cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: realnode-static
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
reclaimPolicy: Retain
EOF
    for i in $(seq -w 1 "${REALNODE_PVS:-12}"); do
      mkdir -p "$node/pv/pv-$i"
      chown 65532:65532 "$node/pv/pv-$i"
      cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: realnode-pv-$i
  labels: {exportjob.io/realnode: "true"}
spec:
  capacity: {storage: 20Gi}
  accessModes: [ReadWriteOnce, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: realnode-static
  hostPath: {path: $node/pv/pv-$i, type: Directory}
EOF
    done
  } | kubectl apply -f - >&2
}

start_registry() {  # the loopback registry (distribution), storage under STATE/registry
  local reg=$1
  cgroup_create "$cg_name/host"
  cgroup_create "$cg_name/node"
  mkdir -p "$state/registry"
  cat > "$state/registry/config.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $state/registry/data}
  delete: {enabled: true}
http: {addr: "$reg"}
EOF
  OTEL_TRACES_EXPORTER=none start registry host "$bin/registry" serve "$state/registry/config.yml"
  wait_until 30 "the registry on $reg" python3 -c "import urllib.request; urllib.request.urlopen('http://$reg/v2/')"
}

image_only() {  # registry + base image + the Dockerfile build; the registry keeps running until down
  local reg
  down 2>/dev/null || true
  mkdir -p "$run" "$logs"
  reg=127.0.0.1:$(free_port)
  start_registry "$reg"
  push_images "$reg"
  build_image "$reg"
  echo "IMAGE=$reg/exportjob-operator:$image_tag"
}

up() {
  local t_all api_port reg_port kubelet_port reg t0
  t_all=$(now)
  for tool in kubelet runc containerd containerd-shim-runc-v2 ctr cni-bridge cni-loopback cni-host-local registry buildkitd buildctl etcd kube-apiserver kube-controller-manager helm; do
    [ -x "$bin/$tool" ] || die "bin/$tool missing: run make realnode-tools (hack/build-tools.sh realnode) and make tools"
  done
  command -v socat >/dev/null || die "socat missing: run make system-deps"
  down 2>/dev/null || true
  mkdir -p "$run" "$logs" "$node"
  rm -rf "$node/containerd/state" "$node/kubelet/pods" "$node/cni/ipam" "$node/pods-logs" "$node/varlog" "$node/pv"

  t0=$(now)
  (cd "$repo" && PYTHONPATH=operator "$py" -m devcluster.cli up --no-kubelet --state-dir "$state/cluster") >&2 \
    || die "control plane did not start"
  api_port=$(sed -n 's#.*server: https://127.0.0.1:\([0-9]*\).*#\1#p' "$KUBECONFIG" | head -1)
  log "control plane up in $(since "$t0")s (API server 127.0.0.1:$api_port)"

  reg_port=$(free_port); kubelet_port=$(free_port)
  reg=127.0.0.1:$reg_port
  start_registry "$reg"
  push_images "$reg"
  build_image "$reg" &
  local build_pid=$!

  # The node: namespaces held by one process, private /run, /var/log, /var/lib/cni.
  write_node_config "$api_port" "$reg_port" "$kubelet_port"
  start node-holder node unshare --net --mount --propagation private -- sh -c "
    set -e
    mount -t tmpfs -o mode=755 realnode-run /run
    mount --bind '$node/varlog' /var/log
    mount -t tmpfs -o mode=755 realnode-varlib /var/lib
    mkdir -p /var/lib/cni
    ip link set lo up
    ip addr add 10.0.0.1/32 dev lo
    ip addr add 10.0.0.10/32 dev lo
    ip addr add $node_ip/32 dev lo
    echo \$\$ > '$run/node-holder.inner'
    exec sleep infinity"
  wait_until 10 "the node namespaces" test -s "$run/node-holder.inner"

  # host <-> node relays over unix sockets (no host interface, address or route)
  start relay-api-host host socat "UNIX-LISTEN:$node/sock/api.sock,fork,unlink-early" "TCP:127.0.0.1:$api_port"
  start relay-registry-host host socat "UNIX-LISTEN:$node/sock/registry.sock,fork,unlink-early" "TCP:$reg"
  node_start relay-api-node socat "TCP-LISTEN:$api_port,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$node/sock/api.sock"
  node_start relay-registry-node socat "TCP-LISTEN:$reg_port,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$node/sock/registry.sock"
  node_start relay-kubelet-node socat "UNIX-LISTEN:$node/sock/kubelet.sock,fork,unlink-early" "TCP:127.0.0.1:$kubelet_port"
  start relay-kubelet-host host socat "TCP-LISTEN:$kubelet_port,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$node/sock/kubelet.sock"

  t0=$(now)
  node_start containerd "$bin/containerd" --config "$node/containerd/config.toml"
  wait_until 30 containerd test -S "$node/sock/containerd.sock"
  node_start nodeservices env PYTHONPATH="$repo/operator" "$py" -m devcluster.nodeservices \
    --kubeconfig "$state/cluster/config/kubelet.kubeconfig" --node "$node_name" --api-socket "$node/sock/api.sock"
  node_start kubelet "$bin/kubelet" --config "$node/kubelet/config.yaml" \
    --kubeconfig "$state/cluster/config/kubelet.kubeconfig" --root-dir "$node/kubelet/root" \
    --cert-dir "$node/kubelet/pki" --hostname-override "$node_name" --node-ip "$node_ip" --v=1
  wait_until 120 "Node $node_name Ready" sh -c \
    "kubectl get node $node_name -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
  log "node $node_name Ready in $(since "$t0")s (containerd, kubelet)"
  make_pvs

  wait "$build_pid" || die "the image build failed (logs: $logs/image-build.log)"
  t0=$(now)
  kubectl create namespace "$release_ns" --dry-run=client -o yaml | kubectl apply -f - >&2
  "$helm" upgrade --install "$release" "$repo/charts/exportjob-operator" --namespace "$release_ns" \
    -f "$repo/hack/realnode/values.yaml" \
    --set image.repository="$reg/exportjob-operator" --set image.tag="$image_tag" \
    --wait --timeout 5m >&2 || die "helm install failed"
  log "chart installed (operator Pod Ready) in $(since "$t0")s"
  cat > "$state/realnode.env" <<EOF
KUBECONFIG=$KUBECONFIG
REALNODE_REGISTRY=$reg
REALNODE_IMAGE=$reg/exportjob-operator:$image_tag
REALNODE_NODE=$node_name
REALNODE_CGROUP=$cg_name
REALNODE_RELEASE=$release
REALNODE_RELEASE_NAMESPACE=$release_ns
REALNODE_STATE=$state
EOF
  log "up in $(since "$t_all")s; logs in $logs; environment in $state/realnode.env"
  echo "KUBECONFIG=$KUBECONFIG"
}

status() {
  local name rc=0
  for f in "$run"/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    if alive "$name"; then echo "  $name: pid $(cat "$f")"; else echo "  $name: not running"; rc=1; fi
  done
  kubectl get nodes -o wide 2>/dev/null || rc=1
  return $rc
}

case $cmd in
  up) up ;;
  image) image_only ;;
  down) down ;;
  status) status ;;
  *) die "unknown command $cmd (up|down|status)" ;;
esac
