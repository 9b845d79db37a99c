"""Which addresses the HTTP source may connect to: the egress policy, checked before any connection.

Whoever can create an ExportJob chooses `spec.source.http.url`, and the worker
Pod fetches it from inside the cluster. Without a policy that turns the worker
into a proxy towards what only the cluster can reach: the cloud metadata
service (169.254.169.254, fd00:ec2::254, link-local) and the Kubernetes API
server. So, by default (`restricted`), the HTTP client resolves the host
name, checks every resolved address here, and connects to a checked address
only (no second DNS lookup that could answer differently). Refused:

- link-local addresses (169.254.0.0/16, fe80::/10) — where metadata services live;
- the well-known metadata addresses outside link-local (fd00:ec2::254);
- the API server: `KUBERNETES_SERVICE_HOST` and the `KUBERNETES_PORT_*_TCP_ADDR`
  addresses Kubernetes injects into every Pod (the `kubernetes` Service's
  cluster IP), and any extra address or network listed in
  `EXPORTJOB_HTTP_DENY_NETWORKS` (comma-separated, e.g. the API server's
  endpoint addresses, which only the admin knows);
- unspecified (0.0.0.0, ::) and multicast addresses, never a real server.

`EXPORTJOB_HTTP_EGRESS=unrestricted` (the operator setting
`workerHttpEgress`, chart value `worker.httpEgress`) turns the checks off, for
clusters where such sources are legitimate. A NetworkPolicy (chart value
`networkPolicy.worker`) is the second, network-level line of defence.

Pure, apart from `EgressPolicy.from_env` reading the environment it is given.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

EGRESS_ENV = "EXPORTJOB_HTTP_EGRESS"
DENY_NETWORKS_ENV = "EXPORTJOB_HTTP_DENY_NETWORKS"
RESTRICTED = "restricted"
UNRESTRICTED = "unrestricted"

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA_ADDRESSES = ("fd00:ec2::254",)  # AWS IMDS over IPv6 (not link-local)


class EgressConfigError(ValueError):
    """A bad value in the egress environment variables; the message names the variable."""


@dataclass(frozen=True)
class EgressPolicy:
    """`restricted`: refuse link-local, metadata, API-server and `denied` addresses; else allow everything."""

    restricted: bool = True
    denied: tuple[IpNetwork, ...] = field(default=())
    api_server: tuple[IpAddress, ...] = field(default=())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EgressPolicy:
        env = os.environ if environ is None else environ
        mode = env.get(EGRESS_ENV, RESTRICTED).strip() or RESTRICTED
        if mode not in (RESTRICTED, UNRESTRICTED):
            raise EgressConfigError(f"{EGRESS_ENV} must be {RESTRICTED} or {UNRESTRICTED}, not {mode!r}")
        api: list[IpAddress] = []
        for name, value in env.items():
            if name == "KUBERNETES_SERVICE_HOST" or (name.startswith("KUBERNETES_PORT_") and name.endswith("_ADDR")):
                try:
                    api.append(ipaddress.ip_address(value.strip()))
                except ValueError:
                    continue  # a host name here is unusual; the deny list covers what the admin adds
        denied: list[IpNetwork] = []
        for part in env.get(DENY_NETWORKS_ENV, "").split(","):
            if part.strip():
                try:
                    denied.append(ipaddress.ip_network(part.strip(), strict=False))
                except ValueError:
                    raise EgressConfigError(
                        f"{DENY_NETWORKS_ENV}: {part.strip()!r} is not an address or network"
                    ) from None
        return cls(restricted=mode == RESTRICTED, denied=tuple(denied), api_server=tuple(dict.fromkeys(api)))


def refusal(address: str, policy: EgressPolicy) -> str | None:
    """Why `address` (a literal IP) may not be connected to under `policy`, or None when it may."""
    if not policy.restricted:
        return None
    ip: IpAddress = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if str(ip) in _METADATA_ADDRESSES:
        return "a cloud metadata service address"
    if ip in policy.api_server:
        return "the Kubernetes API server"
    if ip.is_unspecified or ip.is_multicast:
        return "an unspecified or multicast address"
    for network in policy.denied:
        if ip.version == network.version and ip in network:
            return f"in a denied network ({DENY_NETWORKS_ENV})"
    return None


def first_allowed(addresses: Iterable[str], policy: EgressPolicy) -> tuple[str | None, str | None]:
    """(the first allowed address, None), or (None, why the first one was refused) when none is allowed."""
    why: str | None = None
    for address in addresses:
        problem = refusal(address, policy)
        if problem is None:
            return address, None
        why = why or problem
    return None, why
