"""`exportjob download` through the API server's Pod proxy: client peak RSS and throughput by file size.

Starts a dev cluster (operator/devcluster) in a temp dir, puts a file of each
size on a claim, records a Succeeded ExportJob for it (status written through
the status subresource, as the operator does; no worker runs), then times

* `download`: `kubectl-exportjob download NAME -o FILE` (reader Pod, Pod proxy,
  sha256 check, rename; Pod creation and deletion included), and
* `kubectl-raw`: the baseline, `kubectl get --raw .../pods/NAME:8470/proxy/ > FILE`
  against an already running reader Pod (Go, streaming, no checksum, no Pod set-up),

each under `/usr/bin/time -f %M` (the child's own peak RSS). Median of `--repeat`.

    .venv/bin/python bench/download.py                 # 10 MB and 1 GB, median of 3
    .venv/bin/python bench/download.py --sizes-mb 10 --repeat 1
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))
sys.path.insert(0, str(ROOT / "bench"))

from kubernetes import client  # noqa: E402

from devcluster import DevCluster  # noqa: E402
from devcluster.waiting import wait_for  # noqa: E402
from exportjob.client.kubeapi import Cluster  # noqa: E402
from exportjob.client.readerpod import READER_PORT, download_target, pod_ready, reader_pod  # noqa: E402
from machine import cpu_model  # noqa: E402

TIME = "/usr/bin/time"
CLI = Path(sys.executable).parent / "kubectl-exportjob"
NAMESPACE = "bench"
BLOCK = os.urandom(1 << 20)


def timed(argv: list[str], stdout_path: Path | None = None) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds (user+sys), peak RSS MB) of one child process."""
    with tempfile.NamedTemporaryFile("r") as timing:
        out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL  # noqa: SIM115
        started = time.monotonic()
        try:
            subprocess.run([TIME, "-f", "%U %S %M", "-o", timing.name, *argv], check=True, stdout=out)
        finally:
            if stdout_path:
                out.close()  # type: ignore[union-attr]
        wall = time.monotonic() - started
        user, system, rss_kb = timing.read().strip().splitlines()[-1].split()
        return wall, float(user) + float(system), int(rss_kb) / 1024


def write_file(path: Path, size: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = BLOCK[: min(left, len(BLOCK))]
            f.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def record_export(k8s: client.ApiClient, name: str, path: str, size: int, sha256: str) -> dict:
    custom = client.CustomObjectsApi(k8s)
    body = {
        "apiVersion": "exportjob.io/v1alpha1",
        "kind": "ExportJob",
        "metadata": {"name": name},
        "spec": {
            "format": "csv",
            "source": {"synthetic": {"records": 1}},
            "output": {"claimName": "exports", "path": path},
        },
    }
    custom.create_namespaced_custom_object("exportjob.io", "v1alpha1", NAMESPACE, "exportjobs", body)
    status = {"phase": "Succeeded", "claimName": "exports", "path": path, "sha256": sha256, "bytes": size}
    return custom.patch_namespaced_custom_object_status(
        "exportjob.io", "v1alpha1", NAMESPACE, "exportjobs", name, {"status": status}
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("kubectl"):
        sys.exit("kubectl is needed for the kubectl-raw baseline")
    work = Path(tempfile.mkdtemp(prefix="exportjob-bench-download-"))
    cluster = DevCluster(work / "cluster", bin_dir=ROOT / "bin")
    print(f"# {os.cpu_count()} CPUs ({cpu_model()}), load {os.getloadavg()[0]:.1f}", flush=True)
    try:
        cluster.start()
        kubeconfig = str(cluster.kubeconfig)
        subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                kubeconfig,
                "apply",
                "--server-side",
                "-f",
                str(ROOT / "crds/exportjob.io_exportjobs.yaml"),
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                kubeconfig,
                "wait",
                "--for=condition=Established",
                "crd/exportjobs.exportjob.io",
            ],
            check=True,
            capture_output=True,
        )
        api = Cluster(kubeconfig)
        k8s = api.api_client
        core = client.CoreV1Api(k8s)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        core.create_namespaced_persistent_volume_claim(
            NAMESPACE,
            {
                "metadata": {"name": "exports"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
            },
        )
        wait_for(lambda: core.list_namespaced_service_account(NAMESPACE).items, timeout=30, description="default SA")
        rows = []
        for size_mb in args.sizes_mb:
            size = size_mb * 1_000_000
            name = f"file-{size_mb}mb"
            path = f"bench/{name}.bin"
            sha256 = write_file(cluster.volume_dir(NAMESPACE, "exports") / path, size)
            target = download_target(record_export(k8s, name, path, size, sha256))
            out = work / "out.bin"
            ours = []
            for _ in range(args.repeat):
                ours.append(
                    timed(
                        [str(CLI), "download", name, "-n", NAMESPACE, "-o", str(out), "-v", "--kubeconfig", kubeconfig]
                    )
                )
                assert out.stat().st_size == size
                out.unlink()
            pod = api.create_pod(reader_pod(target, image="unused"))
            pod_name = pod["metadata"]["name"]
            wait_for(lambda pn=pod_name: pod_ready(api.read_pod(NAMESPACE, pn)), timeout=60, description="reader Pod")
            raw_path = f"/api/v1/namespaces/{NAMESPACE}/pods/{pod_name}:{READER_PORT}/proxy/"
            health = ["kubectl", "--kubeconfig", kubeconfig, "get", "--raw", raw_path + "healthz"]
            wait_for(
                lambda h=health: subprocess.run(h, capture_output=True).returncode == 0,
                timeout=30,
                description="reader serving",
            )
            raw = []
            for _ in range(args.repeat):
                raw.append(timed(["kubectl", "--kubeconfig", kubeconfig, "get", "--raw", raw_path], stdout_path=out))
                assert out.stat().st_size == size
                out.unlink()
            api.delete_pod(NAMESPACE, pod_name)
            for case, runs in (("download", ours), ("kubectl-raw", raw)):
                wall = statistics.median(r[0] for r in runs)
                cpu = statistics.median(r[1] for r in runs)
                rss = statistics.median(r[2] for r in runs)
                rows.append((case, size_mb, wall, size / wall / 1e6, cpu, rss))
            (cluster.volume_dir(NAMESPACE, "exports") / path).unlink()
        print(f"# load {os.getloadavg()[0]:.1f} at the end")
        head = f"  {'case':<12} {'size MB':>8} {'wall s':>8} {'MB/s':>8} {'CPU s':>8} {'RSS MB':>8}"
        print(f"{head}   (median of {args.repeat}; CPU = user+sys of the client process)")
        for case, size_mb, wall, rate, cpu, rss in rows:
            print(f"  {case:<12} {size_mb:>8,} {wall:>8.2f} {rate:>8.1f} {cpu:>8.2f} {rss:>8.1f}")
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
