"""``python -m devcluster.cli up|down|status``: the command line of the dev cluster.

Used by ``make testenv-up`` / ``testenv-down`` / ``testenv-status``
(hack/make/devcluster.mk) and by developers.  ``up`` prints progress on stderr
and ``KUBECONFIG=<path>`` as the last line of stdout, so
``eval "$(python -m devcluster.cli up | tail -1)"`` or ``export $(...)`` works.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .cluster import DevCluster, DevClusterError
from .paths import DEFAULT_STATE_DIR, REPO_ROOT


def _progress(msg: str) -> None:
    print(f"[devcluster] {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="state directory (default: %(default)s)"
    )
    common.add_argument(
        "--bin-dir",
        type=Path,
        default=REPO_ROOT / "bin",
        help="directory with etcd, kube-apiserver, kube-controller-manager (default: %(default)s)",
    )
    parser = argparse.ArgumentParser(
        prog="python -m devcluster.cli", description="Local Kubernetes control plane for tests and the demo."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up", parents=[common], help="start the cluster (or reuse the running one) and print KUBECONFIG=<path>"
    )
    up.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness")
    up.add_argument(
        "--no-kubelet",
        action="store_true",
        help="control plane only, for a real kubelet to join (hack/realnode.sh)",
    )
    up.add_argument("-v", "--verbosity", type=int, default=0, help="klog verbosity of the Go components")
    sub.add_parser("down", parents=[common], help="stop every process of the cluster")
    status = sub.add_parser(
        "status", parents=[common], help="show the cluster's processes and health (exit 1 if unhealthy)"
    )
    status.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    cluster = DevCluster(
        args.state_dir,
        args.bin_dir,
        verbosity=getattr(args, "verbosity", 0),
        process_kubelet=not getattr(args, "no_kubelet", False),
    )
    if args.command == "up":
        started = time.monotonic()
        try:
            cluster.start(timeout=args.timeout, log=_progress)
        except DevClusterError as exc:
            _progress(f"failed: {exc}")
            _progress(f"logs: {cluster.log_dir}")
            return 1
        _progress(f"up in {time.monotonic() - started:.1f}s; logs in {cluster.log_dir}")
        print(f"KUBECONFIG={cluster.kubeconfig}", flush=True)
        return 0
    if args.command == "down":
        cluster.stop()
        _progress(f"stopped (state kept in {cluster.state_dir})")
        return 0
    st = cluster.status()
    if args.json:
        print(json.dumps(st, indent=2))
    else:
        print(f"state dir:  {st['state_dir']}")
        print(f"server:     {st['server'] or '-'}")
        print(f"kubeconfig: {st['kubeconfig']}")
        for name, pid in st["components"].items():
            print(f"  {name:<24} {'pid ' + str(pid) if pid else 'not running'}")
        print(f"apiserver ready: {st['apiserver_ready']}  node ready: {st['node_ready']}")
    return 0 if st["healthy"] else 1


if __name__ == "__main__":
    sys.exit(main())
