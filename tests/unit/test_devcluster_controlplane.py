"""Flags of the control-plane components, the PKI and kubeconfigs of the dev cluster."""

from pathlib import Path

import pykube
from cryptography import x509
from cryptography.x509.oid import NameOID

from devcluster.certs import ensure_pki
from devcluster.controlplane import CONTROLLERS, Ports, apiserver_argv, controller_manager_argv, etcd_argv
from devcluster.kubeconfig import write_kubeconfig

PORTS = Ports(etcd_client=1, etcd_peer=2, apiserver=3, controller_manager=4)


def test_controllers():
    for needed in (
        "job-controller",
        "garbage-collector-controller",
        "ttl-after-finished-controller",
        "namespace-controller",
        "serviceaccount-controller",
    ):
        assert needed in CONTROLLERS
    assert not any("nodelifecycle" in c or "node-lifecycle" in c for c in CONTROLLERS)


def test_flags(tmp_path):
    pki = ensure_pki(tmp_path / "pki")
    api = apiserver_argv(Path("kube-apiserver"), pki=pki, ports=PORTS, cert_dir=tmp_path)
    for flag in (
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        "--secure-port=3",
        "--authorization-mode=RBAC",
        "--etcd-servers=http://127.0.0.1:1",
        f"--service-account-signing-key-file={pki.sa_key}",
        f"--client-ca-file={pki.ca_cert}",
    ):
        assert flag in api
    kcm = controller_manager_argv(Path("kcm"), kubeconfig=tmp_path / "k", pki=pki, ports=PORTS, cert_dir=tmp_path)
    assert "--leader-elect=false" in kcm
    assert f"--controllers={','.join(CONTROLLERS)}" in kcm
    assert "--listen-client-urls=http://127.0.0.1:1" in etcd_argv(Path("etcd"), data_dir=tmp_path, ports=PORTS)


def test_pki_is_complete_and_reused(tmp_path):
    pki = ensure_pki(tmp_path / "pki")
    assert pki.complete()
    before = pki.ca_cert.read_bytes()
    assert ensure_pki(tmp_path / "pki").ca_cert.read_bytes() == before
    admin = x509.load_pem_x509_certificate(pki.client_cert("admin").read_bytes())
    assert [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    serving = x509.load_pem_x509_certificate(pki.serving_cert.read_bytes())
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    assert oct(pki.ca_key.stat().st_mode & 0o777) == "0o600"


def test_kubeconfig_loads_in_pykube(tmp_path):
    pki = ensure_pki(tmp_path / "pki")
    path = write_kubeconfig(
        tmp_path / "kubeconfig",
        server="https://127.0.0.1:3",
        ca_cert=pki.ca_cert,
        client_cert=pki.client_cert("admin"),
        client_key=pki.client_key("admin"),
        user="admin",
    )
    cfg = pykube.KubeConfig.from_file(str(path))
    assert cfg.cluster["server"] == "https://127.0.0.1:3"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
