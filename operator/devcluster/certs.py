"""The dev cluster's PKI: a CA, serving and client certificates, the service-account key.

Used by :mod:`devcluster.cluster` when it prepares a state directory.  Everything
is generated locally with ``cryptography`` (ECDSA P-256 for TLS, RSA 2048 for the
service-account signing key, which signs RS256 tokens like a stock cluster) and
kept in ``<state_dir>/pki`` so that a restarted cluster keeps the same
credentials and an exported ``KUBECONFIG`` stays valid.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["Pki", "ensure_pki"]

_VALIDITY = dt.timedelta(days=365)

# identity name -> (common name, organisations) for the client certificates
CLIENTS = {
    "admin": ("devcluster:admin", ["system:masters"]),
    "kube-controller-manager": ("system:kube-controller-manager", []),
    # the process kubelet also does the scheduler's job (Binding) and reads the
    # Secrets/ConfigMaps of every pod, so it gets cluster-admin rights
    "kubelet": ("devcluster:kubelet", ["system:masters"]),
}


@dataclass(frozen=True)
class Pki:
    """Paths of the generated files."""

    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"

    def client_cert(self, who: str) -> Path:
        return self.dir / f"{who}.crt"

    def client_key(self, who: str) -> Path:
        return self.dir / f"{who}.key"

    def complete(self) -> bool:
        files = [self.ca_cert, self.ca_key, self.serving_cert, self.serving_key, self.sa_key, self.sa_pub]
        files += [self.client_cert(w) for w in CLIENTS] + [self.client_key(w) for w in CLIENTS]
        return all(f.is_file() for f in files)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(cn: str, orgs: list[str] | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs or []]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: x509.Name,
    key,
    ca_key,
    ca_name: x509.Name,
    *,
    ca: bool = False,
    usages: list | None = None,
    sans: list | None = None,
) -> x509.Certificate:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                key_cert_sign=False,
                crl_sign=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages or []), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def ensure_pki(pki_dir: Path) -> Pki:
    """Create the PKI in ``pki_dir`` unless a complete one is already there."""
    pki = Pki(Path(pki_dir))
    if pki.complete():
        return pki
    pki.dir.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("devcluster-ca")
    ca_cert = _issue(ca_name, ca_key, ca_key, ca_name, ca=True)
    _write(pki.ca_key, _key_pem(ca_key), private=True)
    _write(pki.ca_cert, ca_cert.public_bytes(pem))

    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [
        x509.DNSName(n)
        for n in (
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        )
    ]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1", "10.0.0.1")]
    cert = _issue(_name("kube-apiserver"), key, ca_key, ca_name, usages=[ExtendedKeyUsageOID.SERVER_AUTH], sans=sans)
    _write(pki.serving_key, _key_pem(key), private=True)
    _write(pki.serving_cert, cert.public_bytes(pem))

    for who, (cn, orgs) in CLIENTS.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(_name(cn, orgs), key, ca_key, ca_name, usages=[ExtendedKeyUsageOID.CLIENT_AUTH])
        _write(pki.client_key(who), _key_pem(key), private=True)
        _write(pki.client_cert(who), cert.public_bytes(pem))

    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(
        pki.sa_key,
        sa.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()),
        private=True,
    )
    _write(pki.sa_pub, sa.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo))
    return pki
