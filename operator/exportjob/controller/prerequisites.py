"""Does what an export needs exist: its claim, the worker's ServiceAccount, its Secrets?

Found objects are trusted for `ttl` seconds, so admitting a thousand exports
that share a claim and a Secret costs a few GETs, not thousands; a missing one
is looked up again every time (the export waits in `Waiting` and is rechecked
every resync). Values of Secrets are never read into anything but the check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from exportjob.controller.decide import Missing
from exportjob.controller.manifests import claim_name, secret_refs
from exportjob.controller.settings import OperatorSettings
from exportjob.reasons import Reason
from exportjob.spec import ExportJobSpec


class LookupApi(Protocol):
    def claim_exists(self, namespace: str, name: str) -> bool: ...
    def service_account_exists(self, namespace: str, name: str) -> bool: ...
    def secret_problem(self, namespace: str, name: str, key: str, selector: str | None = None) -> str | None: ...
    def usage_problem(self, kind: str, namespace: str, name: str, selector: str | None, setting: str) -> str | None: ...


class Prerequisites:
    def __init__(
        self,
        api: LookupApi,
        settings: OperatorSettings,
        ttl: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.settings = settings
        self.ttl = settings.prerequisite_cache_seconds if ttl is None else ttl
        self.monotonic = monotonic
        self._found_until: dict[tuple[str, ...], float] = {}

    def missing(self, namespace: str, spec: ExportJobSpec) -> Missing | None:
        claim = claim_name(spec, self.settings)
        if claim is None:
            return Missing(
                Reason.CLAIM_NOT_FOUND,
                "no PersistentVolumeClaim: set spec.output.claimName, or give the operator a default claim",
            )
        if not self._found(("claim", namespace, claim), lambda: self.api.claim_exists(namespace, claim)):
            return Missing(
                Reason.CLAIM_NOT_FOUND,
                f'PersistentVolumeClaim "{claim}" not found in namespace "{namespace}"; '
                "the export starts once it exists",
            )
        if self.settings.claim_selector:  # the admin allows only claims with these labels (not cached: rare)
            problem = self.api.usage_problem(
                "PersistentVolumeClaim", namespace, claim, self.settings.claim_selector, "claimSelector"
            )
            if problem is not None:
                return Missing(Reason.CLAIM_NOT_FOUND, problem)
        account = self.settings.worker_service_account
        if not self._found(("sa", namespace, account), lambda: self.api.service_account_exists(namespace, account)):
            return Missing(
                Reason.SERVICE_ACCOUNT_NOT_FOUND,
                f'ServiceAccount "{account}" (the worker\'s) not found in namespace "{namespace}"; '
                "the export starts once it exists",
            )
        for _env, secret, key in secret_refs(spec):
            problems: list[str] = []

            def check(secret: str = secret, key: str = key, problems: list[str] = problems) -> bool:
                problem = self.api.secret_problem(namespace, secret, key, self.settings.secret_selector)
                if problem is not None:
                    problems.append(problem)
                return problem is None

            if not self._found(("secret", namespace, secret, key), check):
                return Missing(Reason.SECRET_NOT_FOUND, f"{problems[0]}; the export starts once it exists")
        return None

    def _found(self, key: tuple[str, ...], lookup: Callable[[], bool]) -> bool:
        now = self.monotonic()
        if self._found_until.get(key, 0.0) > now:
            return True
        if lookup():
            self._found_until[key] = now + self.ttl
            return True
        self._found_until.pop(key, None)
        return False
