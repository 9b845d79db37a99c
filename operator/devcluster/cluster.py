"""``DevCluster``: start, reuse and stop the local control plane and the process kubelet.

The public entry point of the package (re-exported as ``devcluster.DevCluster``),
used by the ``python -m devcluster.cli`` CLI (``make testenv-up``), by the pytest
fixtures in ``tests/cluster/conftest.py`` and by the demo.  It lays out a state
directory, generates the PKI and kubeconfigs, runs the Go-built etcd,
kube-apiserver and kube-controller-manager from ``./bin`` plus
``python -m devcluster.kubelet`` as detached processes recorded in pid files, and
waits until the API is ready and the Node is Ready.

State directory layout::

    kubeconfig            admin kubeconfig (client certificate in system:masters)
    cluster.json          ports and versions of the running cluster
    pki/                  CA, serving/client certificates, service-account key
    config/               kubeconfigs of kube-controller-manager and the kubelet
    etcd/                 etcd data (wiped on every fresh start)
    logs/                 etcd.log kube-apiserver.log kube-controller-manager.log kubelet.log
    run/                  pid files
    volumes/<ns>/<claim>/ PersistentVolumeClaim directories
    pods/<ns>/<pod>/      container logs, termination-message files, emptyDirs
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import requests

from . import processes
from .certs import ensure_pki
from .controlplane import CONTROLLERS, REAL_NODE_CONTROLLERS, Ports, apiserver_argv, controller_manager_argv, etcd_argv
from .kubeconfig import write_kubeconfig
from .paths import REPO_ROOT, pod_dir, volume_dir
from .podnet import egress_selector_config, egress_socket

__all__ = ["COMPONENTS", "DevCluster", "DevClusterError", "MissingToolsError"]

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kubelet")
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
# wiped before every fresh start (pki/ and kubeconfig are kept so credentials stay valid)
_EPHEMERAL = ("etcd", "certs", "config", "run", "volumes", "pods", "cluster.json")


class DevClusterError(RuntimeError):
    """The dev cluster could not be started."""


class MissingToolsError(DevClusterError):
    """The Go-built binaries are not in the bin directory."""


def _tail(path: Path, lines: int = 40) -> str:
    try:
        data = Path(path).read_bytes()[-64 * 1024 :]
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


class DevCluster:
    """A local Kubernetes control plane with a process kubelet, rooted in ``state_dir``."""

    def __init__(
        self,
        state_dir: Path | str,
        bin_dir: Path | str | None = None,
        *,
        node_name: str = "devcluster",
        verbosity: int = 0,
        process_kubelet: bool = True,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.bin_dir = Path(bin_dir).resolve() if bin_dir else REPO_ROOT / "bin"
        self.node_name = node_name
        self.verbosity = verbosity
        # False: the control plane only (a real kubelet joins it: hack/realnode.sh), with the
        # persistentvolume-binder controller so claims bind to PersistentVolumes.
        self.process_kubelet = process_kubelet
        self._procs: dict[str, Any] = {}

    # ------------------------------------------------------------------ paths
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def pki_dir(self) -> Path:
        return self.state_dir / "pki"

    def pid_file(self, component: str) -> Path:
        return self.run_dir / f"{component}.pid"

    def log_file(self, component: str) -> Path:
        return self.log_dir / f"{component}.log"

    def volume_dir(self, namespace: str, claim_name: str) -> Path:
        """Where PersistentVolumeClaim ``claim_name`` of ``namespace`` lives on disk."""
        return volume_dir(self.state_dir, namespace, claim_name)

    def pod_dir(self, namespace: str, pod: str) -> Path:
        return pod_dir(self.state_dir, namespace, pod)

    def pod_log(self, namespace: str, pod: str, container: str) -> str:
        """Output (stdout+stderr) of a container run by the process kubelet ('' if none yet)."""
        path = self.pod_dir(namespace, pod) / f"{container}.log"
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def info(self) -> dict[str, Any]:
        try:
            return json.loads((self.state_dir / "cluster.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}

    @property
    def server(self) -> str | None:
        return self.info.get("server")

    # ----------------------------------------------------------------- health
    def _session(self) -> requests.Session:
        s = requests.Session()
        s.trust_env = False  # REQUESTS_CA_BUNDLE & co. would override our CA and proxies do not apply
        s.cert = (str(self.pki_dir / "admin.crt"), str(self.pki_dir / "admin.key"))
        s.verify = str(self.pki_dir / "ca.crt")
        return s

    def _get(self, session: requests.Session, server: str, path: str, timeout: float = 2.0):
        try:
            return session.get(server + path, timeout=timeout)
        except requests.RequestException:
            return None

    @property
    def components(self) -> tuple[str, ...]:
        return COMPONENTS if self.process_kubelet else COMPONENTS[:-1]

    def running_components(self) -> dict[str, int | None]:
        return {c: processes.running_pid(self.pid_file(c)) for c in self.components}

    def _node_ready(self, session: requests.Session, server: str) -> bool:
        r = self._get(session, server, f"/api/v1/nodes/{self.node_name}")
        if r is None or r.status_code != 200:
            return False
        conds = r.json().get("status", {}).get("conditions", [])
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)

    def status(self) -> dict[str, Any]:
        """Processes, API readiness and Node readiness of the cluster in ``state_dir``."""
        comps = self.running_components()
        server = self.server
        ready = node_ready = False
        if server and comps["kube-apiserver"]:
            with self._session() as s:
                r = self._get(s, server, "/readyz")
                ready = r is not None and r.status_code == 200
                node_ready = ready and (not self.process_kubelet or self._node_ready(s, server))
        return {
            "state_dir": str(self.state_dir),
            "server": server,
            "kubeconfig": str(self.kubeconfig),
            "components": comps,
            "apiserver_ready": ready,
            "node_ready": node_ready,
            "healthy": ready and node_ready and all(comps.values()),
        }

    def is_healthy(self) -> bool:
        return bool(self.status()["healthy"])

    # ------------------------------------------------------------------ start
    def check_binaries(self) -> None:
        missing = [b for b in BINARIES if not os.access(self.bin_dir / b, os.X_OK)]
        if missing:
            raise MissingToolsError(
                f"missing {', '.join(missing)} in {self.bin_dir}: run `make tools` (hack/build-tools.sh) "
                "to build the Go-built control-plane binaries (the first build takes several minutes)"
            )

    def start(self, timeout: float = 120.0, log=None) -> DevCluster:
        """Start the cluster, or reuse a healthy one already running in ``state_dir`` (idempotent)."""
        log = log or (lambda msg: None)
        self.check_binaries()
        if self.is_healthy():
            log(f"reusing the running cluster in {self.state_dir}")
            return self
        self.stop()  # leftovers of a half-started or crashed cluster
        started = time.monotonic()
        deadline = started + timeout
        try:
            self._start(deadline, log)
        except BaseException:
            self.stop()
            raise
        log(f"cluster ready in {time.monotonic() - started:.1f}s")
        return self

    def _reset_state(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for name in _EPHEMERAL:
            p = self.state_dir / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        for d in ("etcd", "certs", "config", "run", "volumes", "pods", "logs"):
            (self.state_dir / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir / "etcd", 0o700)

    def _choose_ports(self) -> Ports:
        previous = self.info.get("ports", {}).get("apiserver") or self._previous_server_port()
        api = previous if previous and processes.port_is_free(previous) else None
        chosen: set[int] = set()

        def pick() -> int:
            while True:
                p = processes.free_port()
                if p not in chosen and p != api:
                    chosen.add(p)
                    return p

        return Ports(etcd_client=pick(), etcd_peer=pick(), apiserver=api or pick(), controller_manager=pick())

    def _previous_server_port(self) -> int | None:
        # keep an exported KUBECONFIG valid across `down`/`up` when the port is still free
        try:
            text = self.kubeconfig.read_text()
        except FileNotFoundError:
            return None
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("server: https://127.0.0.1:"):
                with contextlib.suppress(ValueError):
                    return int(line.rsplit(":", 1)[1])
        return None

    def _check_alive(self, component: str) -> None:
        proc = self._procs.get(component)
        if proc is not None and proc.poll() is not None:
            raise DevClusterError(
                f"{component} exited with code {proc.returncode}; last lines of "
                f"{self.log_file(component)}:\n{_tail(self.log_file(component))}"
            )

    def _wait(self, what: str, predicate, deadline: float, components: tuple[str, ...]) -> None:
        while True:
            for c in components:
                self._check_alive(c)
            if predicate():
                return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {c}:\n{_tail(self.log_file(c), 20)}" for c in components)
                raise DevClusterError(f"timed out waiting for {what}\n{tails}")
            time.sleep(0.1)

    def _start(self, deadline: float, log) -> None:
        # the previous port is read before the reset (cluster.json goes with it)
        ports = self._choose_ports()
        self._reset_state()
        pki = ensure_pki(self.pki_dir)
        server = f"https://127.0.0.1:{ports.apiserver}"
        write_kubeconfig(
            self.kubeconfig,
            server=server,
            ca_cert=pki.ca_cert,
            client_cert=pki.client_cert("admin"),
            client_key=pki.client_key("admin"),
            user="devcluster-admin",
        )
        write_kubeconfig(
            self.state_dir / "config" / "kube-controller-manager.kubeconfig",
            server=server,
            ca_cert=pki.ca_cert,
            client_cert=pki.client_cert("kube-controller-manager"),
            client_key=pki.client_key("kube-controller-manager"),
            user="kube-controller-manager",
        )
        write_kubeconfig(
            self.state_dir / "config" / "kubelet.kubeconfig",
            server=server,
            ca_cert=pki.ca_cert,
            client_cert=pki.client_cert("kubelet"),
            client_key=pki.client_key("kubelet"),
            user="kubelet",
        )

        log(f"starting etcd on 127.0.0.1:{ports.etcd_client}")
        self._spawn_component("etcd", ports)
        self._wait("etcd /health", lambda: self._ready("etcd", ports), deadline, ("etcd",))
        log(f"starting kube-apiserver on {server}")
        self._spawn_component("kube-apiserver", ports)
        self._wait(
            "kube-apiserver /readyz", lambda: self._ready("kube-apiserver", ports), deadline, ("etcd", "kube-apiserver")
        )
        log("starting kube-controller-manager and the process kubelet")
        self._spawn_component("kube-controller-manager", ports)
        if self.process_kubelet:
            self._spawn_component("kubelet", ports)
        all_components = self.components
        self._wait(
            "kube-controller-manager /healthz",
            lambda: self._ready("kube-controller-manager", ports),
            deadline,
            all_components,
        )
        if self.process_kubelet:
            self._wait(f"Node {self.node_name} Ready", lambda: self._ready("kubelet", ports), deadline, all_components)
        session = self._session()

        def default_sa() -> bool:
            r = self._get(session, server, "/api/v1/namespaces/default/serviceaccounts/default")
            return r is not None and r.status_code == 200

        self._wait("the default ServiceAccount", default_sa, deadline, all_components)
        version = self._get(session, server, "/version")
        session.close()
        info = {
            "server": server,
            "ports": ports.as_dict(),
            "node": self.node_name,
            "version": version.json().get("gitVersion") if version is not None else None,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (self.state_dir / "cluster.json").write_text(json.dumps(info, indent=2) + "\n")

    # -------------------------------------------------------------- components
    def _command(self, component: str, ports: Ports) -> tuple[list[str], dict[str, str] | None]:
        """argv and environment of one component (the same on the first start and on a restart)."""
        pki = ensure_pki(self.pki_dir)  # loads the existing PKI
        config = self.state_dir / "config"
        if component == "etcd":
            return etcd_argv(self.bin_dir / "etcd", data_dir=self.state_dir / "etcd", ports=ports), None
        if component == "kube-apiserver":
            egress_config = None
            if self.process_kubelet:  # its Pod network: "cluster" traffic through the kubelet's proxy (podnet.py)
                egress_config = config / "egress-selector.yaml"
                egress_config.write_text(egress_selector_config(egress_socket(self.state_dir)))
            argv = apiserver_argv(
                self.bin_dir / "kube-apiserver",
                pki=pki,
                ports=ports,
                cert_dir=self.state_dir / "certs",
                verbosity=self.verbosity,
                egress_config=egress_config,
                process_kubelet=self.process_kubelet,
            )
            return argv, None
        if component == "kube-controller-manager":
            argv = controller_manager_argv(
                self.bin_dir / "kube-controller-manager",
                kubeconfig=config / "kube-controller-manager.kubeconfig",
                pki=pki,
                ports=ports,
                cert_dir=self.state_dir / "certs",
                verbosity=self.verbosity,
                controllers=CONTROLLERS if self.process_kubelet else (*CONTROLLERS, *REAL_NODE_CONTROLLERS),
            )
            return argv, None
        if component == "kubelet":
            package_root = str(Path(__file__).resolve().parent.parent)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
            env["PYTHONUNBUFFERED"] = "1"
            argv = [
                sys.executable,
                "-m",
                "devcluster.kubelet",
                "--kubeconfig",
                str(config / "kubelet.kubeconfig"),
                "--state-dir",
                str(self.state_dir),
                "--node-name",
                self.node_name,
            ]
            return argv, env
        raise ValueError(f"unknown component {component!r}; one of {', '.join(COMPONENTS)}")

    def _spawn_component(self, component: str, ports: Ports, append: bool = False) -> None:
        argv, env = self._command(component, ports)
        self._procs[component] = processes.spawn(
            argv,
            log_file=self.log_file(component),
            pid_file=self.pid_file(component),
            env=env,
            cwd=self.state_dir,
            append=append,
        )

    def _ready(self, component: str, ports: Ports) -> bool:
        """One readiness probe: etcd /health, kube-apiserver /readyz, kcm /healthz, the Node Ready."""
        plain = requests.Session()
        plain.trust_env = False
        try:
            if component == "etcd":
                r = plain.get(f"http://127.0.0.1:{ports.etcd_client}/health", timeout=1)
                return r.json().get("health") == "true"
            if component == "kube-controller-manager":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    url = f"https://127.0.0.1:{ports.controller_manager}/healthz"
                    return plain.get(url, verify=False, timeout=1).status_code == 200
        except (requests.RequestException, ValueError):
            return False
        finally:
            plain.close()
        server = f"https://127.0.0.1:{ports.apiserver}"
        with self._session() as session:
            if component == "kube-apiserver":
                r = self._get(session, server, "/readyz")
                return r is not None and r.status_code == 200
            return self._node_ready(session, server)

    def _recorded_ports(self) -> Ports:
        recorded = self.info.get("ports")
        if not recorded:
            raise DevClusterError(f"no cluster was started in {self.state_dir} (cluster.json is missing)")
        return Ports(**recorded)

    def _check_component(self, component: str) -> None:
        if component not in COMPONENTS:
            raise DevClusterError(f"unknown component {component!r}; one of {', '.join(COMPONENTS)}")

    def stop_component(self, component: str, *, kill: bool = False, grace: float = 10.0) -> bool:
        """Stop one component: SIGTERM (SIGKILL after ``grace``), or with ``kill`` SIGKILL at once.

        Returns whether it was running; the rest of the cluster keeps running and
        :meth:`start_component` brings it back. A SIGTERMed kubelet stops its
        containers first; a SIGKILLed one leaves them running (they have their own
        sessions), and the next kubelet reports their Pods lost (exit 137).
        """
        self._check_component(component)
        proc = self._procs.pop(component, None)
        rec = processes.read_pid_file(self.pid_file(component))
        was_running = processes.running_pid(self.pid_file(component)) is not None
        if kill and rec is not None and was_running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(rec[0], signal.SIGKILL)
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.wait(timeout=10)
            gone_by = time.monotonic() + 10
            while processes.running_pid(self.pid_file(component)) and time.monotonic() < gone_by:
                time.sleep(0.05)
        processes.stop_pid_file(self.pid_file(component), grace=grace)
        if proc is not None:
            with contextlib.suppress(Exception):
                proc.wait(timeout=10)
        return was_running

    def start_component(self, component: str, timeout: float = 90.0) -> float:
        """Start one stopped component again with its original flags and ports; wait until it is ready.

        Returns the seconds until ready. The new process is recorded in its pid file, so
        :meth:`stop` (``make testenv-down``) finds it. A running component is left alone.
        """
        self._check_component(component)
        ports = self._recorded_ports()
        started = time.monotonic()
        if processes.running_pid(self.pid_file(component)) is None:
            self._spawn_component(component, ports, append=True)
        self._wait(
            f"{component} to be ready",
            lambda: self._ready(component, ports),
            started + timeout,
            (component,),
        )
        return time.monotonic() - started

    def restart_component(self, component: str, *, kill: bool = False, timeout: float = 90.0) -> float:
        """:meth:`stop_component` then :meth:`start_component`; returns the seconds until ready again."""
        self.stop_component(component, kill=kill)
        return self.start_component(component, timeout=timeout)

    # ------------------------------------------------------------------- stop
    def stop(self) -> None:
        """Stop every process this state directory records (kubelet first), leaving none behind."""
        # the kubelet stops its containers itself; sweep their pid files afterwards anyway
        processes.stop_pid_file(self.pid_file("kubelet"), grace=15)
        for pid_file in sorted((self.state_dir / "pods").glob("*/*/*.pid")):
            processes.stop_pid_file(pid_file, grace=2)
        for component in ("kube-controller-manager", "kube-apiserver", "etcd"):
            processes.stop_pid_file(self.pid_file(component), grace=10)
        for proc in self._procs.values():  # reap our own children
            with contextlib.suppress(Exception):
                if proc.poll() is None:
                    processes.terminate_group(proc.pid, grace=2, proc=proc)
        self._procs.clear()

    def __enter__(self) -> DevCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
