"""``python -m devcluster.cli up|down|status|stop|start|restart``: the command line of the dev cluster.

Used by ``make testenv-up`` / ``testenv-down`` / ``testenv-status``
(hack/make/devcluster.mk) and by developers.  ``up`` prints progress on stderr
and ``KUBECONFIG=<path>`` as the last line of stdout, so
``eval "$(python -m devcluster.cli up | tail -1)"`` or ``export $(...)`` works.
``stop|start|restart <component> [--kill]`` act on one of etcd, kube-apiserver,
kube-controller-manager, kubelet of the running cluster (fault injection by hand;
the fault tests use the same :class:`DevCluster` methods).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .cluster import COMPONENTS, DevCluster, DevClusterError
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
    for verb, text in (
        ("stop", "stop one component (SIGTERM; --kill: SIGKILL)"),
        ("start", "start a stopped component again and wait until it is ready"),
        ("restart", "stop one component (SIGTERM; --kill: SIGKILL), start it again, wait until it is ready"),
    ):
        one = sub.add_parser(verb, parents=[common], help=text)
        one.add_argument("component", choices=COMPONENTS)
        if verb != "start":
            one.add_argument("--kill", action="store_true", help="SIGKILL instead of SIGTERM")
        if verb != "stop":
            one.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for readiness")
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
    if args.command in ("stop", "start", "restart"):
        return _one_component(cluster, args)
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


def _one_component(cluster: DevCluster, args: argparse.Namespace) -> int:
    try:
        if args.command == "stop":
            was = cluster.stop_component(args.component, kill=args.kill)
            _progress(
                f"{args.component} {'killed' if args.kill else 'stopped'}"
                if was
                else f"{args.component} was not running"
            )
            return 0
        if args.command == "start":
            seconds = cluster.start_component(args.component, timeout=args.timeout)
        else:
            seconds = cluster.restart_component(args.component, kill=args.kill, timeout=args.timeout)
    except DevClusterError as exc:
        _progress(f"failed: {exc}")
        return 1
    _progress(f"{args.component} ready in {seconds:.1f}s (pid {cluster.running_components()[args.component]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
