"""The operator's settings: one typed object, loaded once at start-up from env and flags.

Every setting has an environment variable `EXPORTJOB_<NAME>` (what the Helm
chart sets) and a command-line flag `--<name>` (what a developer types); flags
win. A bad value fails start-up with a message naming the variable. Pure apart
from reading `os.environ` in `load_settings`.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from exportjob.controller.selectors import parse_selector

ENV_PREFIX = "EXPORTJOB_"


class OperatorSettings(BaseModel):
    """What the operator does and how it builds worker Jobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces to watch (comma-separated); empty watches the whole cluster."
    )
    max_concurrent: int = Field(default=5, ge=1, le=10_000, description="Exports running at once, cluster-wide.")
    max_concurrent_per_namespace: int = Field(
        default=5, ge=1, le=10_000, description="Exports running at once in one namespace."
    )
    worker_image: str = Field(
        default="ghcr.io/exportjob-operator/exportjob-operator:0.1.0", description="Image of the worker container."
    )
    worker_image_pull_policy: str = Field(default="IfNotPresent", pattern="^(Always|IfNotPresent|Never)$")
    worker_service_account: str = Field(
        default="default",
        description=(
            "ServiceAccount of worker Pods, in each export's namespace "
            "(the worker needs no API access; no token is mounted)."
        ),
    )
    worker_http_egress: str = Field(
        default="restricted",
        pattern="^(restricted|unrestricted)$",
        description=(
            "HTTP sources: restricted refuses link-local/metadata addresses and the API server before connecting; "
            "unrestricted allows every address (docs/security.md)."
        ),
    )
    worker_http_deny_networks: list[str] = Field(
        default_factory=list,
        description=(
            "HTTP sources: extra addresses or CIDR networks to refuse (comma-separated), "
            "e.g. the API server's endpoints."
        ),
    )
    secret_selector: str | None = Field(
        default=None,
        description=(
            "Label selector (e.g. exportjob.io/usable=true) a Secret must match before the operator lets a worker "
            "use it; empty allows every Secret of the ExportJob's namespace."
        ),
    )
    claim_selector: str | None = Field(
        default=None,
        description="Label selector a PersistentVolumeClaim must match before the operator writes exports into it.",
    )
    default_claim: str | None = Field(
        default=None, description="PersistentVolumeClaim used when an ExportJob names none."
    )
    output_mount_path: str = Field(default="/var/lib/exportjob/output", description="Where the claim is mounted.")
    worker_cpu_request: str = "100m"
    worker_memory_request: str = "128Mi"
    worker_cpu_limit: str | None = "1"
    worker_memory_limit: str | None = "512Mi"
    job_backoff_limit: int = Field(default=3, ge=0, le=20, description="Default retries of retryable failures.")
    job_active_deadline_seconds: int = Field(default=3600, ge=1, description="Default deadline of an export.")
    job_ttl_seconds_after_finished: int = Field(
        default=86_400, ge=0, description="Default time a finished worker Job is kept."
    )
    resync_seconds: float = Field(
        default=10.0, gt=0, le=3600, description="Reconcile at least this often; Waiting exports are rechecked then."
    )
    full_resync_seconds: float = Field(
        default=300.0,
        ge=10,
        le=86_400,
        description="Re-list unfinished ExportJobs and worker Jobs this often (state otherwise comes from watches).",
    )
    namespace_weights: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Share of free slots per namespace, as ns=weight pairs (comma-separated); unlisted namespaces weigh 1."
        ),
    )
    api_parallelism: int = Field(
        default=8, ge=1, le=64, description="API requests the operator sends at once (admissions, status writes)."
    )
    prerequisite_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        le=600,
        description="How long a found claim, Secret or ServiceAccount is trusted before it is looked up again.",
    )
    metrics_port: int = Field(default=8080, ge=0, le=65_535, description="Port of /metrics (0 disables).")
    health_port: int = Field(default=8081, ge=0, le=65_535, description="Port of the liveness endpoint /healthz.")
    log_format: str = Field(default="json", pattern="^(json|plain)$")
    leader_election: bool = Field(
        default=True, description="Reconcile only while holding a Lease, so replicas never decide admission twice."
    )
    lease_name: str = Field(default="exportjob-operator", description="Name of the leader-election Lease.")
    lease_namespace: str | None = Field(
        default=None, description="Namespace of the Lease; defaults to the operator Pod's own namespace."
    )
    lease_duration_seconds: int = Field(
        default=15, ge=3, le=300, description="A standby takes over when the leader has not renewed for this long."
    )

    @field_validator("namespaces", "worker_http_deny_networks", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("namespace_weights", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        if isinstance(value, str):
            pairs = {}
            for part in filter(None, (p.strip() for p in value.split(","))):
                name, sep, weight = part.partition("=")
                if not sep:
                    raise ValueError(f"expected namespace=weight, got {part!r}")
                pairs[name.strip()] = weight.strip()
            return pairs
        return value

    @field_validator("namespace_weights")
    @classmethod
    def _positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [name for name, weight in value.items() if weight <= 0]
        if bad:
            raise ValueError(f"weights must be positive: {', '.join(bad)}")
        return value

    @property
    def lease_renew_seconds(self) -> float:
        """How often the leader renews its Lease: three renewals per lease duration."""
        return self.lease_duration_seconds / 3

    @field_validator("worker_http_deny_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for part in value:
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"{part!r} is not an IP address or CIDR network") from None
        return value

    @field_validator("secret_selector", "claim_selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_selector(value)  # raises ValueError naming the bad term
        return value.strip()

    @property
    def renew_interval(self) -> float:
        """How often the loop wakes at the latest: a resync, and three renewals per lease duration."""
        if not self.leader_election:
            return self.resync_seconds
        return min(self.resync_seconds, self.lease_duration_seconds / 3)

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    def summary(self) -> dict[str, Any]:
        """What to log at start-up (nothing secret lives here)."""
        return self.model_dump(mode="json")


def _env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def build_argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exportjob-operator",
        description="Run the ExportJob operator. Every flag can also be set as EXPORTJOB_<NAME> in the environment.",
    )
    for name, field in OperatorSettings.model_fields.items():
        parser.add_argument(
            _flag_name(name), dest=name, default=None, help=f"{field.description or name} (env {_env_name(name)})"
        )
    return parser


class SettingsError(ValueError):
    """A setting has a bad value; the message names the variable or flag."""


def load_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> OperatorSettings:
    """Settings from `environ` (default os.environ) overridden by `argv` flags."""
    environ = os.environ if environ is None else environ
    flags = vars(build_argument_parser().parse_args(argv))
    raw: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name in OperatorSettings.model_fields:
        if flags.get(name) is not None:
            raw[name], origin[name] = flags[name], _flag_name(name)
        elif _env_name(name) in environ:
            raw[name], origin[name] = environ[_env_name(name)], _env_name(name)
    for name, value in list(raw.items()):
        if value == "" and OperatorSettings.model_fields[name].default is None:
            raw[name] = None
    try:
        return OperatorSettings.model_validate(raw)
    except ValidationError as error:
        problems = []
        for problem in error.errors(include_url=False):
            name = str(problem["loc"][0]) if problem["loc"] else "?"
            problems.append(f"{origin.get(name, _env_name(name))}: {problem['msg']}")
        raise SettingsError("; ".join(problems)) from None
