"""Leader election on a `coordination.k8s.io/v1` Lease: which operator replica may reconcile.

Admission is only safe when one process decides, so with more than one replica
(high availability, or the overlap of a rolling update) only the holder of the
Lease runs reconcile passes; the others keep their watches warm and take over
once the holder's lease has gone unrenewed for `leaseDurationSeconds`. As in
client-go, expiry is judged by the local clock from the moment this process
last saw the record change, never by comparing another host's timestamps with
ours, so clock skew between nodes cannot hand the lease to two holders.

`next_lease` is the pure decision; `LeaderElector` does the I/O through
`KubeApi`, using the Lease's resourceVersion so that two candidates racing for
an expired lease cannot both win.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from exportjob.controller.errors import Conflict

log = logging.getLogger(__name__)

MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class Lease:
    """The spec of a Lease, as far as leader election uses it."""

    holder: str | None
    duration_seconds: int
    transitions: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Lease:
        return cls(
            holder=spec.get("holderIdentity") or None,
            duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            transitions=int(spec.get("leaseTransitions") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_seconds,
            "leaseTransitions": self.transitions,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
        }


def next_lease(current: Lease | None, me: str, now: str, duration: int, unchanged_for: float) -> Lease | None:
    """The Lease to write so that `me` leads, or None while another holder's lease is still valid.

    `unchanged_for` is how long (local clock) the current record has been seen unchanged.
    """
    if current is None:
        return Lease(holder=me, duration_seconds=duration, acquire_time=now, renew_time=now)
    if current.holder == me:
        return replace(current, duration_seconds=duration, renew_time=now)
    if current.holder and unchanged_for < current.duration_seconds:
        return None
    return Lease(
        holder=me, duration_seconds=duration, transitions=current.transitions + 1, acquire_time=now, renew_time=now
    )


class LeaseApi(Protocol):
    def read_lease(self, namespace: str, name: str) -> tuple[dict[str, Any], str] | None: ...
    def write_lease(self, namespace: str, name: str, spec: dict[str, Any], resource_version: str | None) -> None: ...


class LeaderElector:
    """Acquires and renews the Lease; `lead()` says whether this replica may reconcile now."""

    def __init__(
        self,
        api: LeaseApi,
        namespace: str,
        name: str,
        identity: str,
        duration_seconds: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api, self.namespace, self.name, self.identity = api, namespace, name, identity
        self.duration = duration_seconds
        self.monotonic = monotonic
        self.leading = False
        self._seen: tuple[Any, ...] | None = None
        self._seen_at = 0.0

    def lead(self) -> bool:
        """Try to acquire or renew; True when this replica holds the Lease."""
        record = self.api.read_lease(self.namespace, self.name)
        current = Lease.from_spec(record[0]) if record else None
        fingerprint = (current.holder, current.renew_time) if current else None
        if fingerprint != self._seen:
            self._seen, self._seen_at = fingerprint, self.monotonic()
        now = datetime.now(UTC).strftime(MICROTIME)
        wanted = next_lease(current, self.identity, now, self.duration, self.monotonic() - self._seen_at)
        was_leading = self.leading
        if wanted is None:
            self.leading = False
        else:
            try:
                self.api.write_lease(self.namespace, self.name, wanted.to_spec(), record[1] if record else None)
                self.leading = True
            except Conflict:
                self.leading = False
        if self.leading != was_leading:
            log.info(
                "leadership changed",
                extra={"leading": self.leading, "identity": self.identity, "lease": f"{self.namespace}/{self.name}"},
            )
        return self.leading

    def release(self) -> None:
        """Give the Lease up at shutdown, so a standby takes over at once instead of after expiry."""
        if not self.leading:
            return
        record = self.api.read_lease(self.namespace, self.name)
        if record and Lease.from_spec(record[0]).holder == self.identity:
            released = replace(Lease.from_spec(record[0]), holder=None)
            try:
                self.api.write_lease(self.namespace, self.name, released.to_spec(), record[1])
            except Conflict:
                pass
        self.leading = False
