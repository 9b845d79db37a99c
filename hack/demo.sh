#!/usr/bin/env bash
# `make demo`: the whole story on the local control plane, from nothing.
#
# Starts (or reuses) the local cluster, installs the CRD and the admission
# policy (policies/exportjob-references.yaml), starts the operator and a
# Prometheus server scraping it (loading rules/), applies examples/, waits for
# every export to finish, and prints the ExportJobs, the files with their
# checksums and the main figures as Prometheus has them; every dashboard panel
# query is run against it. Leaves the cluster, the operator and Prometheus
# running for exploration; `make testenv-down` stops all three.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
state=${EXPORTJOB_STATE_DIR:-$repo/.testenv}
export PATH="$repo/.venv/bin:$repo/bin:$PATH"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Local control plane (etcd, kube-apiserver, kube-controller-manager, process kubelet)"
kubeconfig_line=$(PYTHONPATH="$repo/operator" python -m devcluster.cli up --state-dir "$state" | tail -n 1)
export "$kubeconfig_line"
kubectl get nodes

say "CRD"
kubectl apply --server-side -f crds/exportjob.io_exportjobs.yaml
kubectl wait --for condition=Established --timeout=60s crd/exportjobs.exportjob.io

say "Admission policy: an ExportJob's creator must be able to read the Secrets and claim it names (docs/security.md)"
kubectl apply --server-side -f policies/exportjob-references.yaml

say "Operator"
hack/operator.sh start "$state" --max-concurrent 2 --max-concurrent-per-namespace 2 --default-claim exports

say "Prometheus (scrapes the operator's /metrics every second, loads rules/exportjob.rules.yml)"
prometheus_line=$(PYTHONPATH="$repo/operator" python -m devcluster.promcli start --state-dir "$state" \
  --target 127.0.0.1:8080 --scrape-interval 1s | tail -n 1)
export "$prometheus_line"
echo "Prometheus: $PROMETHEUS_URL  (HTTP API; this build has no web UI pages, see docs/monitoring.md)"

say "Examples"
kubectl apply -f examples/00-namespace-and-claim.yaml
for example in synthetic-csv synthetic-pdf inline-csv failing-unreachable-source; do
  kubectl apply -f "examples/$example.yaml"
done
echo "-- an invalid manifest: the API server must reject it"
if kubectl apply -f examples/invalid-two-sources.yaml 2>&1; then
  echo "ERROR: the invalid manifest was accepted" >&2; exit 1
fi

say "Waiting for the exports to finish"
kubectl -n exportjob-demo get exportjobs -o wide
deadline=$(( $(date +%s) + 300 ))
while :; do
  total=$(kubectl -n exportjob-demo get exportjobs -o name | wc -l)
  finished=$( (kubectl -n exportjob-demo get exportjobs -o jsonpath='{range .items[*]}[{.status.phase}]{end}' | grep -oE '\[(Succeeded|Failed)\]' || true) | wc -l)
  [ "$finished" -eq "$total" ] && break
  if [ "$(date +%s)" -gt "$deadline" ]; then
    echo "ERROR: exports did not finish in time; operator log: $state/logs/operator.log" >&2
    kubectl -n exportjob-demo get exportjobs -o wide >&2
    exit 1
  fi
  sleep 2
done

say "Result"
kubectl -n exportjob-demo get exportjobs -o wide
echo
kubectl -n exportjob-demo get exportjob unreachable-source -o jsonpath='unreachable-source failed: {.status.reason}: {.status.message}{"\n"}'

say "Files on the claim (exportjob-demo/exports)"
volume="$state/volumes/exportjob-demo/exports"
(cd "$volume" && find . -type f ! -name '*.part' | sort | while read -r file; do
  printf '%-40s %10s bytes  sha256 %s\n' "$file" "$(stat -c %s "$file")" "$(sha256sum "$file" | cut -d' ' -f1)"
done)
echo
echo "status.sha256 of orders-csv: $(kubectl -n exportjob-demo get ej orders-csv -o jsonpath='{.status.sha256}')"

promcli() { PYTHONPATH="$repo/operator" python -m devcluster.promcli "$@" --state-dir "$state"; }
say "Main figures, from Prometheus ($PROMETHEUS_URL)"
promcli figures
say "Dashboard panels (dashboards/exportjob-operator.json) queried on the live Prometheus"
promcli panels || echo "WARNING: a panel query returned no data (above)" >&2
promcli chart --out "$state/demo-figures.png" >/dev/null
echo "chart of the run: $state/demo-figures.png"
say "Download through the API server (exportjob download: reader Pod, Pod proxy, sha256 check)"
mkdir -p "$state/downloads"
exportjob download orders-csv -n exportjob-demo -o "$state/downloads/orders.csv"
echo
echo "The cluster, the operator and Prometheus keep running. Try:"
echo "  export $kubeconfig_line"
echo "  kubectl get exportjobs -A            # or: kubectl get ej -A -o wide"
echo "  kubectl explain exportjob.spec.source"
echo "  export PATH=$repo/.venv/bin:\$PATH      # exportjob and the kubectl plugin kubectl-exportjob"
echo "  exportjob list -A; kubectl exportjob describe orders-csv -n exportjob-demo"
echo "  curl -s localhost:8080/metrics | grep ^exportjob_"
echo "  curl -s '$PROMETHEUS_URL/api/v1/query?query=format:exportjob_exports:rate5m'"
echo "  curl -s '$PROMETHEUS_URL/api/v1/alerts'"
echo "Stop everything with: make testenv-down"
echo "PROMETHEUS_URL=$PROMETHEUS_URL"
echo "$kubeconfig_line"
