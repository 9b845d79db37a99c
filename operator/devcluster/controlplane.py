"""Command lines of the real control-plane components (etcd, kube-apiserver, kube-controller-manager).

Used by :mod:`devcluster.cluster`, which chooses the ports and paths and runs the
processes.  Pure functions (argv lists), so the flags can be read and unit-tested
in one place.  The kube-apiserver flags follow what controller-runtime's envtest
uses (secure serving on loopback with generated certificates, a client CA, RBAC,
service-account signing so TokenRequest works), plus a service-cluster IP range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .certs import Pki

__all__ = [
    "CONTROLLERS",
    "SERVICE_ACCOUNT_ISSUER",
    "Ports",
    "apiserver_argv",
    "controller_manager_argv",
    "etcd_argv",
]

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"

# The controllers kube-controller-manager runs.  Deliberately absent: the
# node-lifecycle controller (it would taint/evict the process kubelet's Node),
# the scheduler-adjacent and cloud controllers, the PersistentVolume binder (claim
# binding is not simulated: a PVC's directory exists whatever its phase).
CONTROLLERS = (
    "job-controller",
    "cronjob-controller",
    "garbage-collector-controller",
    "ttl-after-finished-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
    "deployment-controller",
    "replicaset-controller",
)
# Added when a real kubelet is the node (DevCluster(process_kubelet=False), hack/realnode.sh):
# claims bind to the harness's static PersistentVolumes.
REAL_NODE_CONTROLLERS = ("persistentvolume-binder-controller",)


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def etcd_argv(binary: Path, *, data_dir: Path, ports: Ports) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(binary),
        "--name=devcluster",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=devcluster={peer}",
        "--initial-cluster-state=new",
        "--unsafe-no-fsync=true",  # throw-away data: durability only costs time
        "--quota-backend-bytes=2147483648",
        "--log-level=warn",
    ]


def apiserver_argv(
    binary: Path,
    *,
    pki: Pki,
    ports: Ports,
    cert_dir: Path,
    verbosity: int = 0,
    egress_config: Path | None = None,
    process_kubelet: bool = True,
) -> list[str]:
    # The pod network (devcluster.podnet): proxy and kubelet traffic goes through the kubelet's CONNECT proxy.
    egress = [f"--egress-selector-config-file={egress_config}"] if egress_config else []
    # pods/log goes to the process kubelet's log endpoint (devcluster.kubeletserver) on the Node's InternalIP;
    # a real node (hack/realnode.sh) is reached by its name through its own relay, with the kubelet's defaults
    kubelet_flags = [
        "--kubelet-preferred-address-types=InternalIP",
        f"--kubelet-certificate-authority={pki.ca_cert}",
        f"--kubelet-client-certificate={pki.client_cert('admin')}",
        f"--kubelet-client-key={pki.client_key('admin')}",
    ]
    return [
        str(binary),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports.apiserver}",
        f"--cert-dir={cert_dir}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        # front-proxy (aggregation) settings as kubeadm sets them; without them the
        # delegated authentication of kube-controller-manager logs errors
        f"--requestheader-client-ca-file={pki.ca_cert}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        "--service-cluster-ip-range=10.0.0.0/24",
        # the "kubernetes" Service cannot point at a loopback address
        "--endpoint-reconciler-type=none",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        "--profiling=false",
        *egress,
        *(kubelet_flags if process_kubelet else []),
        f"--v={verbosity}",
    ]


def controller_manager_argv(
    binary: Path,
    *,
    kubeconfig: Path,
    pki: Pki,
    ports: Ports,
    cert_dir: Path,
    verbosity: int = 0,
    controllers: tuple[str, ...] = CONTROLLERS,
) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        f"--cert-dir={cert_dir}",
        "--leader-elect=false",
        "--cluster-name=devcluster",
        # every controller acts with its own service account, as in kubeadm clusters
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_cert}",
        f"--controllers={','.join(controllers)}",
        "--profiling=false",
        f"--v={verbosity}",
    ]
